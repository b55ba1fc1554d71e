//! Built-in agent templates per product type (API.md §4.6), seeded idempotently at start and
//! cloned into a tenant's agents by `POST /api/admin/provision-client`.
//!
//! The prompts are written for this project from the documented intent of each agent; the JSON
//! output contracts are the documented ones, because downstream clients parse them. Models are
//! tiers (`fast`, `balanced`, `powerful`), so templates work with whatever providers a site has.

use serde_json::json;

use crate::store::templates::TemplateRecord;

/// A template as shipped: product type, name, display name, description, tier, prompt, and the
/// name the reference used for it (renamed on imported databases).
struct Builtin {
    product_type: &'static str,
    agent_name: &'static str,
    legacy_name: Option<&'static str>,
    display_name: &'static str,
    description: &'static str,
    model: &'static str,
    system_prompt: &'static str,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        product_type: "generic",
        agent_name: "assistant",
        legacy_name: None,
        display_name: "General Assistant",
        description: "Default conversational agent",
        model: "fast",
        system_prompt: "You are a helpful, general-purpose assistant. Answer clearly and concisely, \
            structure longer answers with short paragraphs or lists, and say plainly when you do not \
            know something instead of guessing.",
    },
    Builtin {
        product_type: "kasino",
        agent_name: "kasino-classifier",
        legacy_name: Some("classifier"),
        display_name: "Domain Classifier",
        description: "Classifies domains as gambling or safe",
        model: "fast",
        system_prompt: "You classify web traffic for a gambling-addiction recovery service. You receive a \
            domain, optionally the TLS server name or page title, the time of access and the device's recent \
            activity. Decide how likely the destination is gambling-related, paying particular attention to \
            patterns common in India: satta and matka sites, cricket betting and exchange sites, real-money \
            card games (teen patti, rummy, poker), online casinos, and generic betting vocabulary in domain \
            names. Score bands: 90-100 confirmed gambling, 70-89 highly likely, 40-69 suspicious, 0-39 safe. \
            Reply with JSON only, no prose: {\"gambling_score\": 0-100, \"confidence\": 0-1, \"category\": \
            \"satta\"|\"cricket_betting\"|\"casino\"|\"card_game\"|\"general_betting\"|\"safe\", \"action\": \
            \"block\"|\"flag\"|\"pass\", \"reasoning\": \"one or two sentences\"}.",
    },
    Builtin {
        product_type: "kasino",
        agent_name: "kasino-risk",
        legacy_name: Some("risk"),
        display_name: "Risk Assessor",
        description: "Daily behavioral risk assessment",
        model: "balanced",
        system_prompt: "You assess the relapse risk of a person recovering from gambling addiction from the last \
            24 hours of device telemetry: blocked gambling attempts and their times of day, financial patterns, \
            unusual app installs or usage, attempts to work around protection (VPNs, new browsers), and messages \
            about borrowing money. Risk bands: 0-20 low, 21-40 moderate, 41-60 elevated, 61-80 high, 81-100 \
            critical. Be factual and non-judgemental. Reply with JSON only: {\"risk_score\": 0-100, \"factors\": \
            [\"...\"], \"trend\": \"improving\"|\"stable\"|\"worsening\", \"summary\": \"...\", \"alerts\": \
            [{\"severity\": \"critical\"|\"warning\"|\"info\", \"message\": \"...\"}], \"positive_signals\": [\"...\"]}.",
    },
    Builtin {
        product_type: "kasino",
        agent_name: "kasino-transaction",
        legacy_name: Some("transaction"),
        display_name: "Transaction Analyzer",
        description: "Analyzes financial transactions for gambling",
        model: "fast",
        system_prompt: "You analyse one Indian bank SMS or UPI notification for signs of gambling: unknown or \
            suspicious merchants, round amounts, rapid sequences of payments, activity between 11 PM and 6 AM, \
            known gambling payment gateways or keywords, and person-to-person transfers to unknown numbers. \
            Extract the amount when present. Reply with JSON only: {\"is_suspicious\": true|false, \"reason\": \
            \"...\", \"amount\": number, \"merchant_category\": \"standard\"|\"unknown\"|\"suspicious\"|\
            \"confirmed_gambling\", \"risk_level\": \"low\"|\"medium\"|\"high\"|\"critical\"}.",
    },
    Builtin {
        product_type: "kasino",
        agent_name: "kasino-report",
        legacy_name: Some("report"),
        display_name: "Report Generator",
        description: "Weekly compassionate family report",
        model: "powerful",
        system_prompt: "You write the weekly report for the family of a person in recovery from gambling \
            addiction, in warm, plain language without jargon or blame. Cover: an overall assessment of the \
            week; highlights, positives first and then concerns; the risk trend; key numbers (gambling attempts \
            blocked, transactions flagged, average daily risk score); concrete recommendations for the family; \
            and a closing note of encouragement. Keep it short enough to read comfortably in WhatsApp or \
            Telegram. Write free text, not JSON.",
    },
    Builtin {
        product_type: "ehb",
        agent_name: "intake",
        legacy_name: None,
        display_name: "Intake Agent",
        description: "Patient intake and initial assessment",
        model: "balanced",
        system_prompt: "You conduct the clinical intake conversation for eHealthBuddy. Gather demographics, \
            medical history, current symptoms and relevant social circumstances, and use the PHQ-2 and GAD-2 \
            screening questions when appropriate. Ask one question at a time, be kind and clear, and never \
            diagnose. When the intake is complete, output structured JSON summarising what you gathered, \
            including a triage level of \"routine\", \"urgent\" or \"emergency\".",
    },
    Builtin {
        product_type: "ehb",
        agent_name: "followup",
        legacy_name: None,
        display_name: "Follow-up Agent",
        description: "Follow-up session management",
        model: "balanced",
        system_prompt: "You run follow-up sessions for eHealthBuddy patients. Review the previous session, ask \
            about adherence to the care plan, how symptoms have progressed and any new concerns. Output JSON \
            session notes that record the changes since the last visit and updated recommendations.",
    },
    Builtin {
        product_type: "ehb",
        agent_name: "summary",
        legacy_name: None,
        display_name: "Summary Agent",
        description: "Generate patient session summaries",
        model: "powerful",
        system_prompt: "You turn an eHealthBuddy session transcript into a clinical summary with: chief \
            complaint, history of present illness, assessment, plan, and follow-up timeline. Explicitly flag \
            red flags such as suicidal ideation, indicators of abuse, or medication non-compliance.",
    },
];

/// Product types that have built-in templates.
pub const PRODUCT_TYPES: [&str; 3] = ["generic", "kasino", "ehb"];

/// The built-in templates as records to seed, each with the legacy name it may exist under.
pub fn builtin(now: i64) -> Vec<(TemplateRecord, Option<&'static str>)> {
    let first = now - BUILTINS.len() as i64;
    BUILTINS
        .iter()
        .zip(0..)
        .map(|(b, position)| {
            let config = json!({
                "model": b.model,
                "system_prompt": b.system_prompt,
                "tools": [],
                "max_tool_iterations": 3,
            });
            let record = TemplateRecord {
                id: uuid::Uuid::new_v4().to_string(),
                product_type: b.product_type.to_string(),
                agent_name: b.agent_name.to_string(),
                display_name: b.display_name.to_string(),
                description: Some(b.description.to_string()),
                config_json: config.to_string(),
                // One second apart: provisioning clones in (created_at, id) order, which keeps the
                // documented order (kasino: classifier, risk, transaction, report).
                created_at: first + position,
            };
            (record, b.legacy_name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_uses_a_tier_and_every_product_has_templates() {
        let templates = builtin(0);
        for (t, _) in &templates {
            let config: serde_json::Value = serde_json::from_str(&t.config_json).unwrap();
            let model = config["model"].as_str().unwrap();
            assert!(crate::config::Tier::parse(model).is_some(), "{} uses {model}", t.agent_name);
        }
        for product in PRODUCT_TYPES {
            assert!(templates.iter().any(|(t, _)| t.product_type == product));
        }
        let kasino: Vec<&str> =
            templates.iter().filter(|(t, _)| t.product_type == "kasino").map(|(t, _)| t.agent_name.as_str()).collect();
        assert_eq!(kasino, ["kasino-classifier", "kasino-risk", "kasino-transaction", "kasino-report"]);
    }
}
