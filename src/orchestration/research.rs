//! Deep research (`POST /api/research`): split a question into sub-questions, research each with
//! one less level of depth — in parallel when the `research` workflow says so — and synthesize.
//!
//! `max_iterations` is a hard cap on model calls. The budget is divided *before* sub-questions
//! run (so parallel branches cannot overspend it): a question is split only when its budget
//! covers a plan, two answers and a synthesis; otherwise it is answered directly.
//!
//! Sources: each researched sub-question is one source (`source_details` carries its title, the
//! first URL its answer cites, and a relevance score = the share of the original question's
//! terms that its question and answer cover). A question answered directly is its own single
//! source.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;

use super::{Spend, run_agent};
use crate::agents::AgentSpec;
use crate::app::App;
use crate::error::ApiError;

/// Sub-questions per split, whatever the budget.
pub const MAX_SUBQUESTIONS: usize = 5;
/// Plan + two answers + synthesis: the least budget worth splitting.
const MIN_SPLIT_BUDGET: u32 = 4;

pub struct ResearchRequest {
    pub query: String,
    pub depth: u32,
    pub max_iterations: u32,
    pub parallel: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub title: String,
    pub url: Option<String>,
    pub relevance_score: f64,
}

#[derive(Debug)]
pub struct Research {
    /// Markdown.
    pub findings: String,
    pub sources: Vec<Source>,
    pub model_calls: u32,
    pub sub_questions: usize,
    pub duration_ms: u64,
}

/// One answered question and what it cost.
struct Finding {
    answer: String,
    sub_questions: Vec<(String, String)>,
    calls: u32,
}

/// Research `request.query` with `agent` (the research workflow's entry agent).
pub async fn run(
    app: &Arc<App>,
    agent: &AgentSpec,
    request: &ResearchRequest,
    spend: &Spend,
) -> Result<Research, ApiError> {
    let started = Instant::now();
    let finding = investigate(
        app.clone(),
        agent.clone(),
        request.query.clone(),
        request.depth,
        request.max_iterations,
        request.parallel,
        spend.clone(),
    )
    .await?;
    let terms = key_terms(&request.query);
    let sources = if finding.sub_questions.is_empty() {
        vec![source(&request.query, &finding.answer, &terms)]
    } else {
        finding.sub_questions.iter().map(|(question, answer)| source(question, answer, &terms)).collect()
    };
    Ok(Research {
        findings: finding.answer,
        sources,
        model_calls: finding.calls,
        sub_questions: finding.sub_questions.len(),
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn investigate(
    app: Arc<App>,
    agent: AgentSpec,
    question: String,
    depth: u32,
    budget: u32,
    parallel: bool,
    spend: Spend,
) -> Boxed<Result<Finding, ApiError>> {
    Box::pin(async move {
        if depth <= 1 || budget < MIN_SPLIT_BUDGET {
            return answer_directly(&app, &agent, &question, budget, &spend).await;
        }
        let most = MAX_SUBQUESTIONS.min((budget - 2) as usize);
        let plan = run_agent(&app, &agent, plan_prompt(&question, most), 1, &spend).await?;
        let mut calls = plan.model_calls;
        let subs = parse_plan(&plan.content, most);
        if subs.len() < 2 {
            let mut direct = answer_directly(&app, &agent, &question, budget - calls, &spend).await?;
            direct.calls += calls;
            return Ok(direct);
        }

        let shares = split_budget(budget - calls - 1, subs.len());
        let branches = subs.iter().zip(shares).map(|(sub, share)| {
            investigate(app.clone(), agent.clone(), sub.clone(), depth - 1, share, parallel, spend.clone())
        });
        let results: Vec<Result<Finding, ApiError>> = if parallel {
            join_all(branches).await
        } else {
            let mut out = Vec::with_capacity(subs.len());
            for branch in branches {
                out.push(branch.await);
            }
            out
        };
        let mut answered = Vec::with_capacity(subs.len());
        for (sub, result) in subs.into_iter().zip(results) {
            let finding = result?;
            calls += finding.calls;
            answered.push((sub, finding.answer));
        }

        let synthesis = run_agent(&app, &agent, synthesis_prompt(&question, &answered), 1, &spend).await?;
        calls += synthesis.model_calls;
        Ok(Finding { answer: synthesis.content, sub_questions: answered, calls })
    })
}

async fn answer_directly(
    app: &Arc<App>,
    agent: &AgentSpec,
    question: &str,
    budget: u32,
    spend: &Spend,
) -> Result<Finding, ApiError> {
    let prompt = format!("Research this question and answer it thoroughly in Markdown:\n\n{question}");
    let turn = run_agent(app, agent, prompt, budget, spend).await?;
    Ok(Finding { answer: turn.content, sub_questions: Vec::new(), calls: turn.model_calls })
}

fn plan_prompt(question: &str, most: usize) -> String {
    format!(
        "Split the research question below into at most {most} distinct sub-questions that, answered together, \
         answer it fully. Reply with one sub-question per line and nothing else.\n\nQuestion: {question}"
    )
}

fn synthesis_prompt(question: &str, answered: &[(String, String)]) -> String {
    let mut prompt = format!(
        "Write the final research findings for the question below in Markdown, combining the answers to its \
         sub-questions. Keep what is supported, note disagreements, and do not invent sources.\n\nQuestion: {question}\n"
    );
    for (i, (sub, answer)) in answered.iter().enumerate() {
        prompt.push_str(&format!("\n## Sub-question {}: {sub}\n{answer}\n", i + 1));
    }
    prompt
}

/// Sub-questions from a plan reply: one per line, list markers and numbering removed, blank and
/// repeated lines dropped.
fn parse_plan(reply: &str, most: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in reply.lines() {
        let trimmed = line.trim().trim_start_matches(['-', '*', '•', ' ']);
        let unnumbered = match trimmed.find(['.', ')']) {
            Some(i) if i > 0 && trimmed[..i].chars().all(|c| c.is_ascii_digit()) => &trimmed[i + 1..],
            _ => trimmed,
        };
        let question = unnumbered.trim();
        if question.is_empty() || out.iter().any(|q| q.eq_ignore_ascii_case(question)) {
            continue;
        }
        out.push(question.to_string());
        if out.len() == most {
            break;
        }
    }
    out
}

/// `total` calls shared as evenly as possible; earlier branches get the remainder.
fn split_budget(total: u32, parts: usize) -> Vec<u32> {
    let parts_u32 = parts as u32;
    (0..parts_u32).map(|i| total / parts_u32 + u32::from(i < total % parts_u32)).collect()
}

/// Lower-cased words of three or more letters, without repeats.
fn key_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 3) {
        let word = word.to_lowercase();
        if !terms.contains(&word) {
            terms.push(word);
        }
    }
    terms
}

fn source(question: &str, answer: &str, query_terms: &[String]) -> Source {
    let covered_text = format!("{question} {answer}").to_lowercase();
    let covered = key_terms(&covered_text);
    let hits = query_terms.iter().filter(|t| covered.contains(t)).count();
    let score = if query_terms.is_empty() { 1.0 } else { hits as f64 / query_terms.len() as f64 };
    Source {
        title: question.to_string(),
        url: first_url(answer),
        relevance_score: (score.clamp(0.05, 1.0) * 100.0).round() / 100.0,
    }
}

fn first_url(text: &str) -> Option<String> {
    let start = text.find("https://").or_else(|| text.find("http://"))?;
    let url: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ')' | ']' | '>' | '"' | '\'' | '<'))
        .collect();
    Some(url.trim_end_matches(['.', ',', ';', ':']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_lose_their_list_markers_and_repeats() {
        let reply = "1. What is Rust?\n2) Who uses Rust?\n- what is rust?\n\n* Why is it fast?\nExtra one";
        assert_eq!(parse_plan(reply, 5), ["What is Rust?", "Who uses Rust?", "Why is it fast?", "Extra one"]);
        assert_eq!(parse_plan(reply, 2).len(), 2);
        assert_eq!(parse_plan("2024 was a year.", 3), ["2024 was a year."]);
    }

    #[test]
    fn budgets_split_evenly_and_sum_to_the_total() {
        assert_eq!(split_budget(3, 3), [1, 1, 1]);
        assert_eq!(split_budget(8, 3), [3, 3, 2]);
        assert_eq!(split_budget(7, 2).iter().sum::<u32>(), 7);
    }

    #[test]
    fn sources_score_coverage_of_the_question_and_find_urls() {
        let terms = key_terms("Rust memory safety guarantees");
        let s = source("How does Rust ensure memory safety?", "See https://doc.rust-lang.org/book/ch04.html.", &terms);
        assert_eq!(s.url.as_deref(), Some("https://doc.rust-lang.org/book/ch04.html"));
        assert!((s.relevance_score - 0.75).abs() < 1e-6, "{}", s.relevance_score);
        assert_eq!(source("unrelated", "nothing", &terms).relevance_score, 0.05);
    }
}
