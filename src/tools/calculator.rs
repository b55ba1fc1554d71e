//! The `calculator` tool: evaluates an arithmetic expression sent by the model.
//!
//! It has its own small tokenizer and recursive-descent parser instead of an evaluation crate
//! or a scripting engine, for two reasons: model-supplied text must never be run as code, only
//! read as arithmetic; and when the model gets an expression wrong, the error has to say what
//! and where (`unexpected ')' at position 7`) so the model can fix it on its next try.
//!
//! Positions in errors count characters (not bytes) from 0.

use std::f64::consts::{E, PI};

/// Longer input is not arithmetic a model would write; the cap also bounds the work per call.
pub const MAX_LEN: usize = 10_000;
/// Each nesting level costs four stack frames (under 2 KiB even unoptimised), so this keeps
/// the recursion well inside a 2 MiB thread stack whatever the input.
pub const MAX_DEPTH: usize = 256;

const OPERAND: &str = "a number, constant, function or '('";
const PAREN: &str = "'(' after a function name";
const FUNCTIONS: &str = "sqrt, sin, cos, tan, log, ln, abs, exp, floor, ceil, round";

/// Why an expression could not be evaluated. Messages go back to the model verbatim.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    #[error("empty expression")]
    Empty,
    #[error("expression too long: {len} bytes, the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("nesting too deep: more than {max} nested levels")]
    TooDeep { max: usize },
    #[error("unexpected character '{ch}' at position {pos}")]
    UnexpectedChar { ch: char, pos: usize },
    #[error("invalid number '{text}' at position {pos}")]
    InvalidNumber { text: String, pos: usize },
    #[error("number '{text}' at position {pos} is too large")]
    NumberTooLarge { text: String, pos: usize },
    #[error("unexpected '{token}' at position {pos}, expected {expected}")]
    UnexpectedToken { token: String, pos: usize, expected: &'static str },
    #[error("unexpected end of expression, expected {expected}")]
    UnexpectedEnd { expected: &'static str },
    #[error("missing operator at position {pos}: implicit multiplication is not supported, write '*'")]
    ImplicitMultiplication { pos: usize },
    #[error("unknown function '{name}' at position {pos} (known: {FUNCTIONS})")]
    UnknownFunction { name: String, pos: usize },
    #[error("unknown name '{name}' at position {pos} (known constants: pi, e)")]
    UnknownName { name: String, pos: usize },
    #[error("division by zero")]
    DivisionByZero,
    #[error("modulo by zero")]
    ModuloByZero,
    #[error("sqrt of a negative number")]
    SqrtOfNegative,
    #[error("logarithm of a non-positive number")]
    LogOfNonPositive,
    #[error("result is not a finite number")]
    NotFinite,
}

/// Evaluates `expression`. `^`/`**` bind tighter than a unary minus on their left
/// (`-2^2 = -4`) and are right-associative; `%` keeps the sign of the dividend, like `fmod`.
pub fn evaluate(expression: &str) -> Result<f64, CalcError> {
    if expression.len() > MAX_LEN {
        return Err(CalcError::TooLong { len: expression.len(), max: MAX_LEN });
    }
    if expression.trim().is_empty() {
        return Err(CalcError::Empty);
    }
    let chars: Vec<char> = expression.chars().collect();
    let mut parser = Parser { tokens: tokenize(&chars)?, chars, next: 0, depth: 0 };
    let value = parser.expr().map_err(|e| *e)?;
    match parser.bump() {
        Some(token) => Err(parser.after_operand(token, "an operator or the end of the expression")),
        // Every operation checked its own result, so `value` is finite here.
        None => Ok(value),
    }
}

/// Renders a result for the model. Twelve significant digits hide binary noise
/// (`0.1 + 0.2` gives `0.3`); integers up to 1e15 are exact in an f64 and print in full.
/// The output is itself a valid expression, so the model can paste it into the next call.
pub fn format_result(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    let scientific = format!("{value:.11e}");
    let (Some((mantissa, exponent)), Ok(rounded)) = (scientific.split_once('e'), scientific.parse::<f64>()) else {
        return value.to_string();
    };
    let Ok(exponent) = exponent.parse::<i32>() else { return value.to_string() };
    if (-5..15).contains(&exponent) {
        let decimals = usize::try_from(11 - exponent).unwrap_or(0);
        trim_zeros(&format!("{rounded:.decimals$}")).to_string()
    } else {
        format!("{}e{exponent}", trim_zeros(mantissa))
    }
}

fn trim_zeros(number: &str) -> &str {
    if number.contains('.') { number.trim_end_matches('0').trim_end_matches('.') } else { number }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Num(f64),
    /// One of `+ - * / % ^`; `**` is lexed as `^`.
    Op(char),
    LParen,
    RParen,
    Ident,
}

/// Tokens point into the source instead of owning their text, so the parser copies them freely.
#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    pos: usize,
    end: usize,
}

fn tokenize(chars: &[char]) -> Result<Vec<Token>, CalcError> {
    let at = |i: usize| chars.get(i).copied();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        let pos = i;
        i += 1;
        let kind = match c {
            _ if c.is_whitespace() => continue,
            '0'..='9' | '.' => {
                while at(i).is_some_and(|c| c.is_ascii_digit() || c == '.') {
                    i += 1;
                }
                // Only a digit after `e` makes it an exponent: `2e` stays `2` then `e`.
                if matches!(at(i), Some('e' | 'E')) {
                    let digits = if matches!(at(i + 1), Some('+' | '-')) { i + 2 } else { i + 1 };
                    if at(digits).is_some_and(|c| c.is_ascii_digit()) {
                        i = digits;
                        while at(i).is_some_and(|c| c.is_ascii_digit()) {
                            i += 1;
                        }
                    }
                }
                let text = slice(chars, pos, i);
                match text.parse::<f64>() {
                    Ok(value) if value.is_finite() => Kind::Num(value),
                    Ok(_) => return Err(CalcError::NumberTooLarge { text, pos }),
                    Err(_) => return Err(CalcError::InvalidNumber { text, pos }),
                }
            }
            _ if c.is_alphabetic() || c == '_' => {
                while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    i += 1;
                }
                Kind::Ident
            }
            '*' if at(i) == Some('*') => {
                i += 1;
                Kind::Op('^')
            }
            '+' | '-' | '*' | '/' | '%' | '^' => Kind::Op(c),
            '(' => Kind::LParen,
            ')' => Kind::RParen,
            _ => return Err(CalcError::UnexpectedChar { ch: c, pos }),
        };
        tokens.push(Token { kind, pos, end: i });
    }
    Ok(tokens)
}

fn slice(chars: &[char], from: usize, to: usize) -> String {
    chars.iter().skip(from).take(to.saturating_sub(from)).collect()
}

fn finite(value: f64) -> Parsed<f64> {
    if value.is_finite() { Ok(value) } else { Err(CalcError::NotFinite.into()) }
}

fn positive(x: f64) -> Result<f64, CalcError> {
    if x > 0.0 { Ok(x) } else { Err(CalcError::LogOfNonPositive) }
}

type Function = fn(f64) -> Result<f64, CalcError>;

fn function(name: &str) -> Option<Function> {
    let f: Function = match name {
        "sqrt" => |x| if x < 0.0 { Err(CalcError::SqrtOfNegative) } else { Ok(x.sqrt()) },
        "log" => |x| positive(x).map(f64::log10),
        "ln" => |x| positive(x).map(f64::ln),
        "sin" => |x| Ok(x.sin()),
        "cos" => |x| Ok(x.cos()),
        "tan" => |x| Ok(x.tan()),
        "abs" => |x| Ok(x.abs()),
        "exp" => |x| Ok(x.exp()),
        "floor" => |x| Ok(x.floor()),
        "ceil" => |x| Ok(x.ceil()),
        "round" => |x| Ok(x.round()),
        _ => return None,
    };
    Some(f)
}

enum Named {
    Constant(f64),
    Function(Function),
}

/// Evaluates while it parses: expressions are short and run once, so an AST would buy nothing.
/// Every intermediate result is checked to be finite, so overflow is reported where it happens
/// rather than hidden by a later operation (`1 / 10^400` is an error, not 0).
struct Parser {
    chars: Vec<char>,
    tokens: Vec<Token>,
    next: usize,
    /// Nested `unary` calls in progress; every recursive path goes through `unary`.
    depth: usize,
}

/// Parser results box their error: every nesting level holds several results on the stack,
/// and a pointer there instead of a whole `CalcError` roughly halves the stack per level.
type Parsed<T> = Result<T, Box<CalcError>>;

impl Parser {
    fn bump(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).copied();
        self.next += usize::from(token.is_some());
        token
    }

    /// Consumes and returns the next token if it is one of `ops`.
    fn op(&mut self, ops: &[char]) -> Option<char> {
        match self.tokens.get(self.next) {
            Some(Token { kind: Kind::Op(op), .. }) if ops.contains(op) => {
                self.next += 1;
                Some(*op)
            }
            _ => None,
        }
    }

    fn unexpected(&self, token: Token, expected: &'static str) -> CalcError {
        CalcError::UnexpectedToken { token: slice(&self.chars, token.pos, token.end), pos: token.pos, expected }
    }

    /// A token where an operator or `)` should be. Anything that starts an operand there
    /// (`2(3)`, `2 pi`) is implicit multiplication, which gets its own message.
    fn after_operand(&self, token: Token, expected: &'static str) -> CalcError {
        match token.kind {
            Kind::Num(_) | Kind::Ident | Kind::LParen => CalcError::ImplicitMultiplication { pos: token.pos },
            _ => self.unexpected(token, expected),
        }
    }

    fn expr(&mut self) -> Parsed<f64> {
        let mut acc = self.term()?;
        while let Some(op) = self.op(&['+', '-']) {
            let rhs = self.term()?;
            acc = finite(if op == '+' { acc + rhs } else { acc - rhs })?;
        }
        Ok(acc)
    }

    fn term(&mut self) -> Parsed<f64> {
        let mut acc = self.unary()?;
        while let Some(op) = self.op(&['*', '/', '%']) {
            let rhs = self.unary()?;
            acc = match op {
                '*' => acc * rhs,
                '/' if rhs == 0.0 => return Err(CalcError::DivisionByZero.into()),
                '/' => acc / rhs,
                _ if rhs == 0.0 => return Err(CalcError::ModuloByZero.into()),
                _ => acc % rhs,
            };
            acc = finite(acc)?;
        }
        Ok(acc)
    }

    /// One nesting level is `unary -> primary -> expr -> term -> unary`, and only `unary` counts
    /// it. Signs are a loop, not recursion, so `------1` costs no stack. A sign applies to the
    /// whole power (`-2^2 = -4`); the exponent is itself a `unary`, which makes `^`
    /// right-associative and allows `2^-1`.
    fn unary(&mut self) -> Parsed<f64> {
        if self.depth >= MAX_DEPTH {
            return Err(CalcError::TooDeep { max: MAX_DEPTH }.into());
        }
        self.depth += 1;
        let mut negative = false;
        while let Some(op) = self.op(&['+', '-']) {
            negative ^= op == '-';
        }
        let mut value = self.primary()?;
        if self.op(&['^']).is_some() {
            value = finite(value.powf(self.unary()?))?;
        }
        // Not restored on the error paths above: an error ends the whole parse.
        self.depth -= 1;
        Ok(if negative { -value } else { value })
    }

    fn primary(&mut self) -> Parsed<f64> {
        let Some(token) = self.bump() else { return Err(CalcError::UnexpectedEnd { expected: OPERAND }.into()) };
        let function = match token.kind {
            Kind::Num(value) => return Ok(value),
            Kind::LParen => None,
            Kind::Ident => match self.name(token)? {
                Named::Constant(value) => return Ok(value),
                Named::Function(apply) => Some(apply),
            },
            _ => return Err(self.unexpected(token, OPERAND).into()),
        };
        let value = self.expr()?;
        match self.bump() {
            Some(Token { kind: Kind::RParen, .. }) => {}
            Some(token) => return Err(self.after_operand(token, "')'").into()),
            None => return Err(CalcError::UnexpectedEnd { expected: "')'" }.into()),
        }
        match function {
            Some(apply) => finite(apply(value)?),
            None => Ok(value),
        }
    }

    /// Resolves a name, consuming the `(` after a function so only its argument is left.
    /// Kept out of `primary` so the name's text is not on the stack while the argument recurses.
    fn name(&mut self, token: Token) -> Parsed<Named> {
        let name = slice(&self.chars, token.pos, token.end);
        let lower = name.to_ascii_lowercase();
        if lower == "pi" || lower == "π" {
            return Ok(Named::Constant(PI));
        }
        if lower == "e" {
            return Ok(Named::Constant(E));
        }
        let next = self.bump();
        let paren = next.is_some_and(|t| t.kind == Kind::LParen);
        match (function(&lower), next) {
            (Some(f), _) if paren => Ok(Named::Function(f)),
            (None, _) if paren => Err(CalcError::UnknownFunction { name, pos: token.pos }.into()),
            (None, _) => Err(CalcError::UnknownName { name, pos: token.pos }.into()),
            (Some(_), Some(next)) => Err(self.unexpected(next, PAREN).into()),
            (Some(_), None) => Err(CalcError::UnexpectedEnd { expected: PAREN }.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: f64) {
        let got = evaluate(input).unwrap_or_else(|e| panic!("{input:?} failed: {e}"));
        assert!((got - expected).abs() <= 1e-9 * expected.abs().max(1.0), "{input:?} gave {got}, expected {expected}");
    }

    fn check_err(input: &str, expected: &str) {
        match evaluate(input) {
            Ok(v) => panic!("{input:?} gave {v}, expected an error containing {expected:?}"),
            Err(e) => assert!(e.to_string().contains(expected), "{input:?}: {e:?} does not contain {expected:?}"),
        }
    }

    #[rustfmt::skip]
    const VALUES: &[(&str, f64)] = &[
        ("42", 42.0), ("  7 ", 7.0), ("3.25", 3.25), (".5", 0.5), ("2.", 2.0), ("1e3", 1000.0), ("2.5E-2", 0.025),
        ("1E+2", 100.0), ("1.e2", 100.0), ("1e-400", 0.0), ("\t1\n+\u{a0}2 ", 3.0), ("1 + 2", 3.0),
        ("10 - 4 - 3", 3.0), ("2 * 3 + 4", 10.0), ("2 + 3 * 4", 14.0), ("20 / 4 / 5", 1.0), ("7 / 2", 3.5),
        ("(2 + 3) * 4", 20.0), ("((1))", 1.0), ("(1 + 2) * (3 + 4) / 7", 3.0), ("0.1 + 0.2", 0.3), ("1 / 3 * 3", 1.0),
        ("7 % 3", 1.0), ("-7 % 3", -1.0), ("5.5 % 2", 1.5), ("2 * 7 % 4", 2.0), ("1 + 7 % 4", 4.0),
        ("2^10", 1024.0), ("2**3", 8.0), ("2^3^2", 512.0), ("2**3**2", 512.0), ("-2^2", -4.0), ("(-2)^2", 4.0),
        ("2^-1", 0.5), ("-2^-2", -0.25), ("2 * 3^2", 18.0), ("0^0", 1.0), ("--3", 3.0), ("-+-3", 3.0), ("+4", 4.0),
        ("3 - -2", 5.0), ("2 * -3", -6.0), ("sqrt(16)", 4.0), ("sqrt(2)^2", 2.0), ("-sqrt(4)", -2.0),
        ("sqrt(sqrt(16))", 2.0), ("Sqrt(9)", 3.0), ("abs(-3.5)", 3.5), ("log(1000)", 3.0), ("ln(e)", 1.0),
        ("exp(0)", 1.0), ("exp(1)", E), ("sin(0)", 0.0), ("sin(pi / 2)", 1.0), ("cos(pi)", -1.0), ("tan(pi/4)", 1.0),
        ("floor(-2.5)", -3.0), ("ceil(2.1)", 3.0), ("round(2.5)", 3.0), ("round(-2.5)", -3.0), ("pi", PI),
        ("PI", PI), ("π", PI), ("2 * π", 2.0 * PI), ("E", E),
    ];

    #[rustfmt::skip]
    const ERRORS: &[(&str, &str)] = &[
        ("", "empty expression"), (" \n ", "empty expression"), ("(1 + 2))", "unexpected ')' at position 7"),
        ("()", "unexpected ')' at position 1"), ("*3", "unexpected '*' at position 0"),
        ("1 + * 2", "unexpected '*' at position 4"), ("1 ** * 2", "unexpected '*' at position 5"),
        ("1 +", "unexpected end"), ("2 ^", "unexpected end"), ("(1 + 2", "unexpected end of expression, expected ')'"),
        ("1 $ 2", "unexpected character '$' at position 2"), ("log(2, 8)", "unexpected character ','"),
        ("π + ?", "unexpected character '?' at position 4"), ("1.2.3", "invalid number '1.2.3' at position 0"),
        (".", "invalid number"), ("1e999", "number '1e999' at position 0 is too large"),
        ("2(3)", "implicit multiplication"), ("(1)(2)", "implicit multiplication"), ("2e", "implicit multiplication"),
        ("2 pi", "missing operator at position 2"), ("(2 3)", "missing operator at position 3"),
        ("foo(1)", "unknown function 'foo' at position 0"), ("x + 1", "unknown name 'x'"),
        ("é + 1 +", "unknown name 'é'"), ("ππ + 1", "unknown name 'ππ'"),
        ("sqrt 4", "unexpected '4' at position 5, expected '('"), ("sqrt", "unexpected end"),
        ("1 / 0", "division by zero"), ("1 / (2 - 2)", "division by zero"), ("5 % 0", "modulo by zero"),
        ("sqrt(-1)", "sqrt of a negative number"), ("log(0)", "logarithm of a non-positive number"),
        ("ln(-1)", "logarithm of a non-positive number"), ("10^400", "result is not a finite number"),
        ("1 / 10^400", "not a finite number"), ("(-8)^(1/3)", "not a finite number"), ("0^-1", "not a finite"),
    ];

    #[rustfmt::skip]
    const FORMATTED: &[(f64, &str)] = &[
        (4.0, "4"), (-4.0, "-4"), (0.0, "0"), (-0.0, "0"), (0.5, "0.5"), (-2.5, "-2.5"), (0.1 + 0.2, "0.3"),
        (1.0 / 3.0, "0.333333333333"), (2.0 / 3.0, "0.666666666667"), (1_234.567_890_123_456_7, "1234.56789012"),
        (PI, "3.14159265359"), (1e20, "1e20"), (1.5e-7, "1.5e-7"), (-1.5e-7, "-1.5e-7"), (0.000_012_34, "0.00001234"),
        (123_456_789_012_345.0, "123456789012345"), (2.999_999_999_999_999_6, "3"), (f64::MAX, "1.79769313486e308"),
    ];

    #[test]
    fn evaluates_and_formats() {
        VALUES.iter().for_each(|&(input, expected)| check(input, expected));
        ERRORS.iter().for_each(|&(input, expected)| check_err(input, expected));
        for &(value, expected) in FORMATTED {
            assert_eq!(format_result(value), expected, "formatting {value:e}");
        }
    }

    #[test]
    fn limits_length_and_depth() {
        check_err(&"1+".repeat(MAX_LEN), "expression too long");
        check_err(&"(".repeat(MAX_LEN + 1), "expression too long");
        check_err(&"(".repeat(MAX_LEN), "nesting too deep");
        check_err(&format!("{}1", "2^".repeat(300)), "nesting too deep");
        check_err(&format!("{}1{}", "sqrt(".repeat(300), ")".repeat(300)), "nesting too deep");
        check(&format!("{}1", "-".repeat(MAX_LEN - 1)), -1.0);
        check(&format!("{}1", "1+".repeat(MAX_LEN / 2 - 1)), MAX_LEN as f64 / 2.0);
    }

    /// The deepest accepted input must fit in half the 2 MiB stack that std and tokio threads get,
    /// even unoptimised (it needs about 450 KiB in a debug build, under 200 KiB in release).
    #[test]
    fn deepest_nesting_fits_half_a_thread_stack() {
        let nested = |levels: usize| format!("{}-1{}", "abs(".repeat(levels), ")".repeat(levels));
        check_err(&nested(MAX_DEPTH), "nesting too deep");
        let input = nested(MAX_DEPTH - 1);
        let handle = std::thread::Builder::new().stack_size(1024 * 1024).spawn(move || evaluate(&input)).unwrap();
        assert_eq!(handle.join().unwrap(), Ok(1.0));
    }

    /// Random sequences of the tokens the grammar knows, now and then one it does not, with or
    /// without spaces between them; most fail, but many get deep into the parser first.
    fn expressionish() -> impl Strategy<Value = String> {
        let known: Vec<&str> =
            "1 0 2.5 .5 2. 1e3 1e 9999999999 + - * ** / % ^ ( ( ) ) sqrt sin log ln round pi e π".split(' ').collect();
        let unknown = vec!["1e999", "x", "foo", ".", ",", "é", "$"];
        let token = prop_oneof![20 => prop::sample::select(known), 1 => prop::sample::select(unknown)];
        let parts = prop::collection::vec((token, prop::sample::select(vec!["", " "])), 0..32);
        parts.prop_map(|parts| parts.into_iter().flat_map(|(token, space)| [token, space]).collect())
    }

    /// Grammatical expressions: evaluating one may hit a math error, but never a syntax error.
    fn grammatical() -> impl Strategy<Value = String> {
        let leaf =
            prop_oneof![(0u32..1000).prop_map(|n| n.to_string()), Just("2.5".to_string()), Just("PI".to_string())];
        leaf.prop_recursive(8, 64, 2, |inner| {
            prop_oneof![
                (inner.clone(), prop::sample::select(vec!["+", "-", "*", "/", "%", "^", "**"]), inner.clone())
                    .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
                (prop::sample::select(vec!["-", "", "sqrt", "abs", "ln", "round", "cos"]), inner)
                    .prop_map(|(f, a)| format!("{f}({a})")),
            ]
        })
    }

    fn assert_sane(input: &str) {
        if let Ok(value) = evaluate(input) {
            assert!(value.is_finite());
            assert!(!format_result(value).is_empty());
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(input in "\\PC*") {
            assert_sane(&input);
        }

        #[test]
        fn never_panics_on_expressionish_strings(input in expressionish()) {
            assert_sane(&input);
        }

        #[test]
        fn grammatical_expressions_parse(input in grammatical()) {
            assert_sane(&input);
            let math = |e: &CalcError| matches!(e, CalcError::DivisionByZero | CalcError::ModuloByZero
                | CalcError::SqrtOfNegative | CalcError::LogOfNonPositive | CalcError::NotFinite);
            prop_assert!(evaluate(&input).as_ref().err().is_none_or(math), "{}: {:?}", input, evaluate(&input));
        }

        #[test]
        fn integer_arithmetic_is_exact(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000) {
            prop_assert_eq!(evaluate(&format!("{a} + {b}")), Ok((a + b) as f64));
            prop_assert_eq!(evaluate(&format!("{a} - {b}")), Ok((a - b) as f64));
            prop_assert_eq!(evaluate(&format!("{a}*{b}")), Ok((a * b) as f64));
        }

        #[test]
        fn formatted_results_evaluate_back(value in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            let text = format_result(value);
            let back = evaluate(&text).unwrap();
            prop_assert!((back - value).abs() <= 1e-11 * value.abs(), "{} -> {} -> {}", value, text, back);
        }

        #[test]
        fn formatted_quotients_evaluate_back(a in -1e6f64..1e6, b in 1e-3f64..1e6) {
            let value = evaluate(&format!("{a} / {b}")).unwrap();
            let back = evaluate(&format_result(value)).unwrap();
            prop_assert!((back - value).abs() <= 1e-11 * value.abs());
        }
    }
}
