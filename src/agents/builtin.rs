//! The platform's built-in agents (API.md §5.3, §1.3): the router and the specialists it routes
//! to. `[[agents]]` entries in ares.toml with the same name replace them.

use super::spec::{AgentSource, AgentSpec, DEFAULT_MAX_ITERATIONS};

/// Specialists the router may choose, in the order its prompt lists them.
pub const SPECIALISTS: [&str; 6] = ["product", "invoice", "sales", "finance", "hr", "orchestrator"];

/// Where routing goes when the router's answer names no known agent.
pub const ROUTER_FALLBACK: &str = "orchestrator";

struct Builtin {
    name: &'static str,
    display_name: &'static str,
    description: &'static str,
    model: &'static str,
    tools: &'static [&'static str],
    max_iterations: u32,
    prompt: &'static str,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "router",
        display_name: "Router",
        description: "Routes incoming requests to the most appropriate specialist agent.",
        model: "fast",
        tools: &[],
        max_iterations: 1,
        prompt: "You route a user's request to exactly one specialist. The specialists are: product (products, \
            features, recommendations), invoice (invoices, billing documents, payments due), sales (sales data, \
            pipeline, revenue), finance (financial analysis, budgets, calculations), hr (people, hiring, leave, \
            policies) and orchestrator (anything complex, multi-step, research-like, or that fits none of the \
            others). Answer with the single lower-case name of the specialist and nothing else.",
    },
    Builtin {
        name: "orchestrator",
        display_name: "Orchestrator",
        description: "Coordinates complex multi-step and research queries.",
        model: "powerful",
        tools: &["calculator", "web_search"],
        max_iterations: DEFAULT_MAX_ITERATIONS,
        prompt: "You are a capable general assistant for complex, multi-step questions. Break problems into steps, \
            use the tools available to you when they help (calculator for arithmetic, web_search for current \
            information), and give a clear, well-structured final answer. Say so when you are unsure.",
    },
    Builtin {
        name: "product",
        display_name: "Product Agent",
        description: "Handles product-related queries and recommendations",
        model: "balanced",
        tools: &[],
        max_iterations: 5,
        prompt: "You are a product specialist. Answer questions about products and features, compare options and \
            recommend what fits the user's needs. Be concrete and honest about limitations.",
    },
    Builtin {
        name: "invoice",
        display_name: "Invoice Agent",
        description: "Processes invoice queries and operations",
        model: "balanced",
        tools: &["calculator"],
        max_iterations: 5,
        prompt: "You are an invoicing specialist. Help with invoices, line items, totals, taxes, due dates and \
            payment status. Use the calculator for any arithmetic and show how totals are derived.",
    },
    Builtin {
        name: "sales",
        display_name: "Sales Agent",
        description: "Analyzes sales data and provides insights",
        model: "balanced",
        tools: &["calculator"],
        max_iterations: 5,
        prompt: "You are a sales analyst. Interpret sales figures, trends and pipelines, and turn them into clear, \
            actionable insights. Use the calculator for growth rates and other figures.",
    },
    Builtin {
        name: "finance",
        display_name: "Finance Agent",
        description: "Handles financial analysis and reporting",
        model: "balanced",
        tools: &["calculator"],
        max_iterations: 5,
        prompt: "You are a financial analyst. Explain financial concepts, analyse statements and compute metrics \
            step by step, using the calculator for arithmetic. State your assumptions.",
    },
    Builtin {
        name: "hr",
        display_name: "HR Agent",
        description: "Manages human resources queries",
        model: "balanced",
        tools: &[],
        max_iterations: 5,
        prompt: "You are a human-resources specialist. Answer questions about hiring, onboarding, leave, benefits \
            and workplace policies helpfully and neutrally; recommend confirming specifics with the company's \
            own policies.",
    },
];

pub fn agents() -> Vec<AgentSpec> {
    BUILTINS
        .iter()
        .map(|b| AgentSpec {
            name: b.name.to_string(),
            display_name: b.display_name.to_string(),
            description: b.description.to_string(),
            source: AgentSource::System,
            id: None,
            model: Some(b.model.to_string()),
            system_prompt: b.prompt.to_string(),
            tools: b.tools.iter().map(|t| t.to_string()).collect(),
            max_tokens: None,
            temperature: None,
            max_iterations: b.max_iterations,
            parallel_tools: true,
            enabled: true,
            collection: None,
        })
        .collect()
}
