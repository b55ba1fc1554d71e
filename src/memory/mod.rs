//! User memory: facts and preferences learned from what a user says in chat, shown by
//! `GET /api/memory` and given back to the model in that user's later chats.
//!
//! Learning is a fixed set of rules over the user's own messages (never the model's replies),
//! so what is stored is predictable and testable; docs/memory.md lists them with examples. Each
//! message is split into sentences, and a sentence teaches at most one thing:
//!
//! | Sentence shape (case-insensitive) | Learned |
//! |---|---|
//! | `my <key> is/are <value>` (key of 1–3 words) | fact `<category of key>` / `<key>` = value |
//! | `I work at/for <value>` | fact `work` / `employer` |
//! | `I work as (a/an) <value>` | fact `work` / `job_title` |
//! | `I live in <value>` | fact `personal` / `location` |
//! | `I am from / I'm from <value>` | fact `personal` / `hometown` |
//! | `call me <value>` | fact `personal` / `preferred_name` |
//! | `remember (that) <text>` | the rules above applied to `<text>` with confidence 0.95, else fact `general` / `note_<first words>` = text |
//! | `forget my <key>` | removes the user's facts with that key |
//! | `I prefer / I'd prefer / I would prefer <value>` | preference: `communication`/`tone` for tone words (concise, formal, …), `communication`/`format` for formats (bullet points, tables, …), `communication`/`language` for `answers in <Language>`, else `general`/`<first words>` |
//! | `please (always) answer/respond/reply/write in <Language>` | preference `communication` / `language` |
//!
//! Plain statements get confidence 0.8, preferences 0.9, anything inside "remember" 0.95.
//! Keys that are not facts about the user (`my question is …`, `my problem is …`) are ignored.
//! `[memory] learn = false` switches learning off; `inject = false` keeps memory out of prompts.

use crate::store::Error;
use crate::store::memory::{self, FactRecord, PreferenceRecord};

/// One thing a message taught.
#[derive(Debug, Clone, PartialEq)]
pub enum Lesson {
    Fact { category: String, key: String, value: String, confidence: f64 },
    Preference { category: String, key: String, value: String, confidence: f64 },
    Forget { key: String },
}

const STATEMENT: f64 = 0.8;
const PREFERENCE: f64 = 0.9;
const EXPLICIT: f64 = 0.95;
/// Longest value kept; longer sentences are rarely facts.
const MAX_VALUE_CHARS: usize = 200;

/// `my <key> is …` keys that describe the conversation, not the user.
const NOT_FACTS: &[&str] = &[
    "question",
    "problem",
    "issue",
    "point",
    "guess",
    "answer",
    "concern",
    "request",
    "bad",
    "fault",
    "pleasure",
    "opinion",
    "understanding",
    "thought",
    "thoughts",
    "apologies",
    "mistake",
    "code",
    "query",
    "error",
    "task",
    "plan",
    "idea",
    "hope",
    "worry",
    "fear",
    "suggestion",
    "first question",
    "next question",
    "last question",
];
const WORK_KEYS: &[&str] = &[
    "employer",
    "company",
    "job",
    "job title",
    "title",
    "role",
    "position",
    "team",
    "manager",
    "boss",
    "department",
    "profession",
    "occupation",
    "salary",
    "office",
    "workplace",
    "employer's name",
];
const PERSONAL_KEYS: &[&str] = &[
    "name",
    "first name",
    "last name",
    "nickname",
    "age",
    "birthday",
    "city",
    "hometown",
    "location",
    "address",
    "email",
    "phone",
    "phone number",
    "wife",
    "husband",
    "partner",
    "son",
    "daughter",
    "kids",
    "children",
    "dog",
    "cat",
    "pet",
    "timezone",
    "time zone",
    "country",
    "native language",
];
const TONE_WORDS: &[&str] = &[
    "concise",
    "brief",
    "short",
    "detailed",
    "thorough",
    "formal",
    "informal",
    "casual",
    "friendly",
    "professional",
    "direct",
    "simple",
    "technical",
    "verbose",
];
const FORMAT_WORDS: &[&str] =
    &["bullet", "bullets", "list", "lists", "table", "tables", "markdown", "code", "examples", "steps"];
const LANGUAGES: &[&str] = &[
    "english",
    "german",
    "french",
    "spanish",
    "italian",
    "portuguese",
    "dutch",
    "polish",
    "swedish",
    "norwegian",
    "danish",
    "finnish",
    "czech",
    "greek",
    "turkish",
    "russian",
    "ukrainian",
    "arabic",
    "hebrew",
    "hindi",
    "japanese",
    "chinese",
    "korean",
    "vietnamese",
    "indonesian",
    "thai",
];

/// Everything `message` teaches, in sentence order.
pub fn extract(message: &str) -> Vec<Lesson> {
    sentences(message).filter_map(lesson_from).collect()
}

fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split(['.', '!', '?', ';', '\n']).map(str::trim).filter(|s| !s.is_empty())
}

fn lesson_from(sentence: &str) -> Option<Lesson> {
    for prefix in ["please remember that ", "remember that ", "please remember ", "remember "] {
        if let Some(rest) = strip_prefix_ci(sentence, prefix) {
            return Some(match statement(rest, EXPLICIT) {
                Some(lesson) => lesson,
                None => Lesson::Fact {
                    category: "general".into(),
                    key: format!("note_{}", slug(rest, 4)),
                    value: clean_value(rest)?,
                    confidence: EXPLICIT,
                },
            });
        }
    }
    if let Some(rest) = strip_prefix_ci(sentence, "forget my ") {
        let key = snake(rest);
        return (!key.is_empty()).then_some(Lesson::Forget { key });
    }
    statement(sentence, STATEMENT).or_else(|| preference(sentence))
}

/// ASCII-case-insensitive prefix strip (prefixes are ASCII), returning the trimmed remainder.
fn strip_prefix_ci<'a>(original: &'a str, prefix: &str) -> Option<&'a str> {
    let head = original.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| original[prefix.len()..].trim())
}

fn fact(category: &str, key: &str, value: &str, confidence: f64) -> Option<Lesson> {
    Some(Lesson::Fact { category: category.into(), key: key.into(), value: clean_value(value)?, confidence })
}

fn statement(sentence: &str, confidence: f64) -> Option<Lesson> {
    const FIXED: [(&str, &str, &str); 8] = [
        ("i work at ", "work", "employer"),
        ("i work for ", "work", "employer"),
        ("i work as an ", "work", "job_title"),
        ("i work as a ", "work", "job_title"),
        ("i work as ", "work", "job_title"),
        ("i live in ", "personal", "location"),
        ("i am from ", "personal", "hometown"),
        ("i'm from ", "personal", "hometown"),
    ];
    for (prefix, category, key) in FIXED {
        if let Some(rest) = strip_prefix_ci(sentence, prefix) {
            return fact(category, key, rest, confidence);
        }
    }
    if let Some(rest) = strip_prefix_ci(sentence, "call me ") {
        return fact("personal", "preferred_name", rest, confidence);
    }
    // "my <key> is <value>", the key one to three words, starting the sentence.
    let rest = strip_prefix_ci(sentence, "my ")?;
    // ASCII lowering keeps byte offsets valid in `rest`.
    let rest_lower = rest.to_ascii_lowercase();
    let (verb_at, verb) = [" is ", " are "].iter().filter_map(|v| rest_lower.find(v).map(|i| (i, *v))).min()?;
    let key_words = rest_lower[..verb_at].trim();
    if key_words.is_empty() || key_words.split_whitespace().count() > 3 || NOT_FACTS.contains(&key_words) {
        return None;
    }
    if !key_words.chars().all(|c| c.is_alphanumeric() || c == ' ' || c == '\'' || c == '-') {
        return None;
    }
    let category = if WORK_KEYS.contains(&key_words) {
        "work"
    } else if PERSONAL_KEYS.contains(&key_words) {
        "personal"
    } else {
        "general"
    };
    fact(category, &snake(key_words), &rest[verb_at + verb.len()..], confidence)
}

fn preference(sentence: &str) -> Option<Lesson> {
    let mut value = None;
    for prefix in ["i would prefer ", "i'd prefer ", "i prefer "] {
        if let Some(rest) = strip_prefix_ci(sentence, prefix) {
            value = Some(rest);
        }
    }
    for verb in ["answer", "respond", "reply", "write"] {
        for prefix in [format!("please always {verb} in "), format!("please {verb} in "), format!("always {verb} in ")]
        {
            if let Some(rest) = strip_prefix_ci(sentence, &prefix)
                && let Some(language) = language_in(rest)
            {
                return Some(preference_lesson("communication", "language", &language));
            }
        }
    }
    let value = clean_value(value?)?;
    let value_lower = value.to_lowercase();
    let words: Vec<&str> = value_lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    if let Some(language) = words.windows(2).find(|w| w[0] == "in" && LANGUAGES.contains(&w[1])).map(|w| w[1]) {
        return Some(preference_lesson("communication", "language", &capitalize(language)));
    }
    if words.iter().any(|w| TONE_WORDS.contains(w)) {
        return Some(preference_lesson("communication", "tone", &value));
    }
    if words.iter().any(|w| FORMAT_WORDS.contains(w)) {
        return Some(preference_lesson("communication", "format", &value));
    }
    Some(preference_lesson("general", &slug(&value, 3), &value))
}

fn preference_lesson(category: &str, key: &str, value: &str) -> Lesson {
    Lesson::Preference { category: category.into(), key: key.into(), value: value.into(), confidence: PREFERENCE }
}

fn language_in(text: &str) -> Option<String> {
    let first = text.split(|c: char| !c.is_alphanumeric()).find(|w| !w.is_empty())?.to_lowercase();
    LANGUAGES.contains(&first.as_str()).then(|| capitalize(&first))
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Trimmed, without trailing punctuation or quotes, at most `MAX_VALUE_CHARS`; `None` if empty.
fn clean_value(value: &str) -> Option<String> {
    let value = value.trim().trim_matches(|c: char| c == '"' || c == '\'' || c == ',' || c.is_whitespace());
    let value: String = value.chars().take(MAX_VALUE_CHARS).collect();
    (!value.is_empty()).then_some(value)
}

fn snake(text: &str) -> String {
    text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join("_")
}

/// The first `words` words, snake_cased: a stable key for free-form notes.
fn slug(text: &str, words: usize) -> String {
    let snake = snake(text);
    snake.split('_').take(words).collect::<Vec<_>>().join("_")
}

/// Store what `lessons` teach about `user_id`.
pub fn apply(txn: &redb::WriteTransaction, user_id: &str, lessons: &[Lesson], now: i64) -> Result<(), Error> {
    for lesson in lessons {
        match lesson {
            Lesson::Fact { category, key, value, confidence } => memory::learn_fact(
                txn,
                &FactRecord {
                    id: uuid::Uuid::now_v7().to_string(),
                    user_id: user_id.to_string(),
                    category: category.clone(),
                    fact_key: key.clone(),
                    fact_value: value.clone(),
                    confidence: *confidence,
                    created_at: now,
                    updated_at: now,
                },
            )?,
            Lesson::Preference { category, key, value, confidence } => memory::learn_preference(
                txn,
                &PreferenceRecord {
                    id: uuid::Uuid::now_v7().to_string(),
                    user_id: user_id.to_string(),
                    category: category.clone(),
                    key: key.clone(),
                    value: value.clone(),
                    confidence: *confidence,
                    created_at: now,
                    updated_at: now,
                },
            )?,
            Lesson::Forget { key } => {
                memory::forget_fact(txn, user_id, key)?;
            }
        }
    }
    Ok(())
}

/// Most memory lines put into a prompt (the most recently updated win).
const MAX_PROMPT_LINES: usize = 40;

/// The system-prompt section that tells the model what it knows about the user, or `None`.
pub fn prompt_section(facts: &[FactRecord], preferences: &[PreferenceRecord]) -> Option<String> {
    let mut lines: Vec<(i64, String)> =
        facts
            .iter()
            .map(|f| (f.updated_at, format!("- {} ({}): {}", f.fact_key.replace('_', " "), f.category, f.fact_value)))
            .chain(preferences.iter().map(|p| {
                (p.updated_at, format!("- prefers ({} / {}): {}", p.category, p.key.replace('_', " "), p.value))
            }))
            .collect();
    if lines.is_empty() {
        return None;
    }
    lines.sort_by_key(|line| std::cmp::Reverse(line.0));
    lines.truncate(MAX_PROMPT_LINES);
    let body: Vec<String> = lines.into_iter().map(|(_, line)| line).collect();
    Some(format!("What you know about this user from earlier conversations:\n{}", body.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact_of(message: &str) -> Option<(String, String, String, f64)> {
        extract(message).into_iter().find_map(|l| match l {
            Lesson::Fact { category, key, value, confidence } => Some((category, key, value, confidence)),
            _ => None,
        })
    }

    fn pref_of(message: &str) -> Option<(String, String, String)> {
        extract(message).into_iter().find_map(|l| match l {
            Lesson::Preference { category, key, value, .. } => Some((category, key, value)),
            _ => None,
        })
    }

    #[test]
    fn statements_become_facts() {
        assert_eq!(
            fact_of("My employer is Acme Corp."),
            Some(("work".into(), "employer".into(), "Acme Corp".into(), 0.8))
        );
        assert_eq!(fact_of("Hi! my name is Ana"), Some(("personal".into(), "name".into(), "Ana".into(), 0.8)));
        assert_eq!(fact_of("I work for Initech"), Some(("work".into(), "employer".into(), "Initech".into(), 0.8)));
        assert_eq!(fact_of("I work as a nurse"), Some(("work".into(), "job_title".into(), "nurse".into(), 0.8)));
        assert_eq!(fact_of("i live in Lisbon"), Some(("personal".into(), "location".into(), "Lisbon".into(), 0.8)));
        assert_eq!(
            fact_of("My favourite colour is green"),
            Some(("general".into(), "favourite_colour".into(), "green".into(), 0.8))
        );
    }

    #[test]
    fn remember_is_explicit_and_keeps_free_notes() {
        assert_eq!(fact_of("Remember that my boss is Dana"), Some(("work".into(), "boss".into(), "Dana".into(), 0.95)));
        assert_eq!(
            fact_of("Please remember I am allergic to peanuts"),
            Some(("general".into(), "note_i_am_allergic_to".into(), "I am allergic to peanuts".into(), 0.95))
        );
    }

    #[test]
    fn conversation_talk_is_not_a_fact() {
        assert_eq!(extract("My question is how to sort a list"), vec![]);
        assert_eq!(extract("What is my name?"), vec![]);
        assert_eq!(extract("My very long key phrase here is something"), vec![]);
        assert_eq!(extract("The weather is nice"), vec![]);
    }

    #[test]
    fn preferences_are_classified() {
        assert_eq!(
            pref_of("I prefer concise answers."),
            Some(("communication".into(), "tone".into(), "concise answers".into()))
        );
        assert_eq!(
            pref_of("I'd prefer bullet points"),
            Some(("communication".into(), "format".into(), "bullet points".into()))
        );
        assert_eq!(
            pref_of("I prefer answers in German"),
            Some(("communication".into(), "language".into(), "German".into()))
        );
        assert_eq!(
            pref_of("Please always reply in french."),
            Some(("communication".into(), "language".into(), "French".into()))
        );
        assert_eq!(
            pref_of("I prefer tea over coffee"),
            Some(("general".into(), "tea_over_coffee".into(), "tea over coffee".into()))
        );
    }

    #[test]
    fn forget_names_a_key() {
        assert_eq!(extract("Forget my employer."), vec![Lesson::Forget { key: "employer".into() }]);
    }

    #[test]
    fn one_message_can_teach_several_things() {
        let lessons = extract("My name is Bo. I live in Oslo! I prefer short replies");
        assert_eq!(lessons.len(), 3);
    }

    #[test]
    fn non_ascii_input_never_panics() {
        for text in ["Rememberé", "my ü is ß", "MY İ İS x", "İ prefer x", "remember", "call me ", "my  is x"] {
            let _ = extract(text);
        }
    }
}
