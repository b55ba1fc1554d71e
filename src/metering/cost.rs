//! What a model call costs, exactly: prices are kept as integer pico-dollars per token and
//! costs summed in pico-dollars, so no float ever touches stored money; a request's cost is
//! rounded once, to the micro-dollar (half up), when it is recorded.
//!
//! Cached input is priced without double counting: `Usage::input_tokens` always counts the
//! whole prompt and `cached_input_tokens` the part of it read from the provider's cache (the
//! wire decoders normalise OpenAI's `prompt_tokens_details.cached_tokens`, which is inside
//! `prompt_tokens`, and Anthropic's `cache_read_input_tokens`, which is not inside
//! `input_tokens`, to that).

use crate::llm::types::Usage;

/// Pico-dollars in a dollar per million tokens: a price of `$p / Mtok` is `p × 10^6` pico-dollars
/// per token.
const PICO_PER_USD_PER_MTOK: f64 = 1_000_000.0;
/// Pico-dollars in a micro-dollar.
const PICO_PER_MICRO: u128 = 1_000_000;

/// A model's prices in pico-dollars per token. Models without prices (local ones) cost 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prices {
    pub input: u64,
    pub output: u64,
    /// Input tokens read from the provider's cache; the input price when none is configured.
    pub cached_input: u64,
}

impl Prices {
    /// From `[[models]]` prices in dollars per million tokens. Validation has refused negative
    /// and non-finite prices; a price with more than six decimals is rounded to the pico-dollar.
    pub fn per_mtok(input: Option<f64>, output: Option<f64>, cached_input: Option<f64>) -> Option<Prices> {
        if input.is_none() && output.is_none() && cached_input.is_none() {
            return None;
        }
        let pico = |usd: Option<f64>| usd.map(|p| (p * PICO_PER_USD_PER_MTOK).round().max(0.0) as u64);
        let input_price = pico(input).unwrap_or(0);
        Some(Prices {
            input: input_price,
            output: pico(output).unwrap_or(0),
            cached_input: pico(cached_input).unwrap_or(input_price),
        })
    }

    /// The cost of one call's usage, in pico-dollars.
    pub fn cost(&self, usage: &Usage) -> Pico {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let fresh = usage.input_tokens - cached;
        Pico(
            u128::from(fresh) * u128::from(self.input)
                + u128::from(cached) * u128::from(self.cached_input)
                + u128::from(usage.output_tokens) * u128::from(self.output),
        )
    }
}

/// An exact amount in pico-dollars (10^-12 USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pico(pub u128);

impl Pico {
    /// Rounded half up to the micro-dollar: what is stored and shown.
    pub fn micros(self) -> u64 {
        u64::try_from((self.0 + PICO_PER_MICRO / 2) / PICO_PER_MICRO).unwrap_or(u64::MAX)
    }
}

impl Pico {
    /// Rounded up to the micro-dollar: for reservations, which must cover what they stand for.
    pub fn micros_up(self) -> u64 {
        u64::try_from(self.0.div_ceil(PICO_PER_MICRO)).unwrap_or(u64::MAX)
    }
}

impl std::ops::Add for Pico {
    type Output = Pico;
    fn add(self, other: Pico) -> Pico {
        Pico(self.0 + other.0)
    }
}

impl std::ops::AddAssign for Pico {
    fn add_assign(&mut self, other: Pico) {
        self.0 += other.0;
    }
}

/// Micro-dollars as the API shows dollars: `0.001234`.
pub fn usd(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Micro-dollars as people write dollars, for messages: cents (`50.00`), or as many decimals
/// as it takes below a cent (`0.00052`).
pub fn usd_cents(micros: u64) -> String {
    if micros.is_multiple_of(10_000) {
        let cents = micros / 10_000;
        return format!("{}.{:02}", cents / 100, cents % 100);
    }
    let exact = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    exact.trim_end_matches('0').to_string()
}
