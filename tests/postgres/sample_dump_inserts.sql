--
-- PostgreSQL database dump
--

\restrict I3XJ7EHD3YGvScrnYC9tkIUNUoUoeCkjX07oDrHVrds5hh9RT7Gmows1BEFbdzC

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: _sqlx_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public._sqlx_migrations (
    version bigint NOT NULL,
    description text NOT NULL,
    installed_on timestamp with time zone DEFAULT now() NOT NULL,
    success boolean NOT NULL,
    checksum bytea NOT NULL,
    execution_time bigint NOT NULL
);


--
-- Name: admin_audit_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.admin_audit_log (
    id text NOT NULL,
    action text NOT NULL,
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    details text,
    admin_ip text,
    created_at bigint NOT NULL
);


--
-- Name: agent_config_versions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.agent_config_versions (
    id text DEFAULT (gen_random_uuid())::text NOT NULL,
    agent_id text NOT NULL,
    version text NOT NULL,
    config_json jsonb NOT NULL,
    is_active boolean DEFAULT true NOT NULL,
    change_source text DEFAULT 'startup'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: agent_runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.agent_runs (
    id text NOT NULL,
    tenant_id text NOT NULL,
    agent_name text NOT NULL,
    user_id text,
    status text DEFAULT 'completed'::text NOT NULL,
    input_tokens bigint DEFAULT 0 NOT NULL,
    output_tokens bigint DEFAULT 0 NOT NULL,
    duration_ms bigint DEFAULT 0 NOT NULL,
    error text,
    created_at bigint NOT NULL
);


--
-- Name: agent_templates; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.agent_templates (
    id text NOT NULL,
    product_type text NOT NULL,
    agent_name text NOT NULL,
    display_name text NOT NULL,
    description text,
    config jsonb NOT NULL,
    created_at bigint NOT NULL
);


--
-- Name: alerts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alerts (
    id text NOT NULL,
    severity text DEFAULT 'info'::text NOT NULL,
    source text NOT NULL,
    title text NOT NULL,
    message text NOT NULL,
    resolved boolean DEFAULT false NOT NULL,
    created_at bigint NOT NULL,
    resolved_at bigint,
    resolved_by text
);


--
-- Name: api_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_keys (
    id text NOT NULL,
    tenant_id text NOT NULL,
    key_hash text NOT NULL,
    key_prefix text NOT NULL,
    name text DEFAULT 'default'::text NOT NULL,
    is_active integer DEFAULT 1 NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint
);


--
-- Name: conversations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.conversations (
    id text NOT NULL,
    user_id text NOT NULL,
    title text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);


--
-- Name: daily_rate_limits; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.daily_rate_limits (
    tenant_id text NOT NULL,
    usage_date bigint NOT NULL,
    request_count bigint DEFAULT 0 NOT NULL
);


--
-- Name: kasno_devices; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.kasno_devices (
    id text NOT NULL,
    tenant_id text NOT NULL,
    name text NOT NULL,
    device_token text,
    status text DEFAULT 'active'::text NOT NULL,
    block_mode text DEFAULT 'aggressive'::text NOT NULL,
    last_seen bigint,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);


--
-- Name: kasno_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.kasno_events (
    id text NOT NULL,
    tenant_id text NOT NULL,
    device_id text NOT NULL,
    event_type text NOT NULL,
    severity text NOT NULL,
    source text NOT NULL,
    domain text,
    app_package text,
    content text,
    gambling_score real,
    action_taken text,
    metadata jsonb,
    created_at bigint NOT NULL
);


--
-- Name: kasno_risk_scores; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.kasno_risk_scores (
    id text NOT NULL,
    tenant_id text NOT NULL,
    device_id text NOT NULL,
    score_date text NOT NULL,
    risk_score real NOT NULL,
    factors jsonb,
    trend text,
    summary text,
    computed_at bigint NOT NULL
);


--
-- Name: kasno_rules; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.kasno_rules (
    id text NOT NULL,
    tenant_id text NOT NULL,
    rule_type text NOT NULL,
    pattern text NOT NULL,
    action text DEFAULT 'block'::text NOT NULL,
    source text DEFAULT 'admin'::text NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    hits bigint DEFAULT 0 NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);


--
-- Name: memory_facts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.memory_facts (
    id text NOT NULL,
    user_id text NOT NULL,
    category text NOT NULL,
    fact_key text NOT NULL,
    fact_value text NOT NULL,
    confidence double precision DEFAULT 1.0 NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);


--
-- Name: messages; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.messages (
    id text NOT NULL,
    conversation_id text NOT NULL,
    role text NOT NULL,
    content text NOT NULL,
    "timestamp" bigint NOT NULL
);


--
-- Name: monthly_usage_cache; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.monthly_usage_cache (
    tenant_id text NOT NULL,
    usage_month bigint NOT NULL,
    request_count bigint DEFAULT 0 NOT NULL,
    token_count bigint DEFAULT 0 NOT NULL
);


--
-- Name: preferences; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.preferences (
    id text NOT NULL,
    user_id text NOT NULL,
    category text NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    confidence double precision NOT NULL,
    created_at bigint NOT NULL
);


--
-- Name: sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sessions (
    id text NOT NULL,
    user_id text NOT NULL,
    token_hash text NOT NULL,
    expires_at bigint NOT NULL,
    created_at bigint NOT NULL
);


--
-- Name: tenant_agents; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tenant_agents (
    id text NOT NULL,
    tenant_id text NOT NULL,
    agent_name text NOT NULL,
    display_name text NOT NULL,
    description text,
    config jsonb NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);


--
-- Name: tenants; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tenants (
    id text NOT NULL,
    name text NOT NULL,
    tier text DEFAULT 'free'::text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);


--
-- Name: usage_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.usage_events (
    id text NOT NULL,
    tenant_id text NOT NULL,
    source text DEFAULT 'http'::text NOT NULL,
    request_count bigint DEFAULT 1 NOT NULL,
    token_count bigint DEFAULT 0 NOT NULL,
    operation text,
    tokens_used bigint DEFAULT 0 NOT NULL,
    effective_tokens bigint DEFAULT 0 NOT NULL,
    success boolean DEFAULT true NOT NULL,
    duration_ms bigint DEFAULT 0 NOT NULL,
    created_at bigint NOT NULL
);


--
-- Name: user_agents; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.user_agents (
    id text NOT NULL,
    user_id text NOT NULL,
    name text NOT NULL,
    display_name text,
    description text,
    model text NOT NULL,
    system_prompt text,
    tools text DEFAULT '[]'::text NOT NULL,
    max_tool_iterations integer DEFAULT 10 NOT NULL,
    parallel_tools boolean DEFAULT false NOT NULL,
    extra text DEFAULT '{}'::text NOT NULL,
    is_public boolean DEFAULT false NOT NULL,
    usage_count integer DEFAULT 0 NOT NULL,
    rating_sum integer DEFAULT 0 NOT NULL,
    rating_count integer DEFAULT 0 NOT NULL,
    source text DEFAULT 'user'::text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);


--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id text NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    name text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);


--
-- Data for Name: _sqlx_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public._sqlx_migrations VALUES (0, 'tenants', '2026-01-01 00:00:00+00', true, '\x55510e8c4c601552bfa246a36896e3e4c2178a03824ea6c26e0e700a4bdedff5b98f8572ddedc2826dc79742b30f8ab1', 1000000);
INSERT INTO public._sqlx_migrations VALUES (1, 'usage events unified', '2026-01-01 00:00:01+00', true, '\x4d2cc2dc8208ca2e12519e3db168ba44bbe785712bdf0c738cc858b3c3fadcd6b621d8a975f60bc7ebde9a6cc04cd321', 1012345);
INSERT INTO public._sqlx_migrations VALUES (2, 'kasino', '2026-01-01 00:00:02+00', true, '\x98f635eb9d3b39299b55b7839d0fbef07677f3cd803e25ed88f4ad8833bf9108985e5f6b0fe5b71d9663d01ac2604f66', 1024690);
INSERT INTO public._sqlx_migrations VALUES (3, 'tenant agents', '2026-01-01 00:00:03+00', true, '\xc23ebe8486df41b345885ddfbdb7a6f2b4be31bbe612de1d9ef3f752022d7326b8c50d40783a439b9b6d8a154055f865', 1037035);
INSERT INTO public._sqlx_migrations VALUES (4, 'agent runs', '2026-01-01 00:00:04+00', true, '\xb5d7afe4ca3a2ffbafa8f284a25103efaa2eef66c4091d99e84696ff7b50a5e1be0a89cf5235491e81bc701bff677c3e', 1049380);
INSERT INTO public._sqlx_migrations VALUES (5, 'alerts', '2026-01-01 00:00:05+00', true, '\x634e6c421dc0e2b0746fe9b8e2e3c853fe52478da79e008613c9d2f9e412e6535b51b3faf66db15bd31f646bf13bf30d', 1061725);
INSERT INTO public._sqlx_migrations VALUES (6, 'audit log', '2026-01-01 00:00:06+00', true, '\x4655f5c75641125f1ae46f418fe82fc4fb836f270bd5002572cba91d4430d6237fbf930e24188ed73d0dbc18bf16d2b7', 1074070);


--
-- Data for Name: admin_audit_log; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.admin_audit_log VALUES ('228a9180-f88f-4e0a-bcde-61d6583c32cb', 'create_tenant', 'tenant', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', '{"name": "acme-corp", "tier": "pro"}', NULL, 1767229200);
INSERT INTO public.admin_audit_log VALUES ('a55b0412-bfe4-482d-b1bd-c83fe69a39a4', 'update_quota', 'tenant', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', '{"new_tier": "pro"}', NULL, 1768089600);
INSERT INTO public.admin_audit_log VALUES ('2990362a-0635-413d-a14a-c074002ec710', 'create_api_key', 'api_key', 'e33945b8-2b81-418b-8fab-4d3a290b53de', '{"tenant_id": "c9fd800e-ef90-4516-a1fa-fc9b1759ac03", "name": "production"}', NULL, 1767661200);
INSERT INTO public.admin_audit_log VALUES ('d41ff164-3165-408a-a447-692458012907', 'create_agent', 'agent', '0d5f5517-2011-453f-bd5f-3af19a7eb414', '{"tenant_id": "c9fd800e-ef90-4516-a1fa-fc9b1759ac03", "agent_name": "assistant"}', NULL, 1767830400);
INSERT INTO public.admin_audit_log VALUES ('78a6871a-6718-49a8-9b3f-6546283d549f', 'resolve_alert', 'alert', '2292781a-26cb-4944-a939-20bcfcce507c', NULL, NULL, 1768611600);
INSERT INTO public.admin_audit_log VALUES ('7966df80-3ded-4dc4-ba14-84466a01c0db', 'provision_client', 'tenant', 'b7b66073-2df4-4858-b512-072c0dcd643b', 'not json at all: it''s plain text', NULL, 1767398400);
INSERT INTO public.admin_audit_log VALUES ('7f848e64-5c20-4726-a89a-003a7890cb8e', 'tenant.quota_updated', 'tenant', '4dd17a50-0c6a-46dd-b8e2-6cddffb01f84', '{"tenant_name": "legacy", "tier": "Platinum", "ünï": "ç☃de"}', '203.0.113.7', 1767657600);


--
-- Data for Name: agent_config_versions; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.agent_config_versions VALUES ('7b1c0579-1bb1-4a76-940e-9bffd2980d03', 'assistant', '1.0.0', '{"model": "llama3.2", "temperature": 0.7}', false, 'startup', '2026-01-05 10:00:00+00');
INSERT INTO public.agent_config_versions VALUES ('89676d98-b429-4114-9171-9e5b3faaeb43', 'assistant', '1.1.0', '{"model": "llama3.2", "tools": ["calculator"], "temperature": 0.3}', true, 'hot_reload', '2026-02-01 12:30:45.123456+00');


--
-- Data for Name: agent_runs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.agent_runs VALUES ('ca8b2f79-5c4b-4e92-b9a6-6c4dbece30c5', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'assistant', NULL, 'completed', 10, 20, 1500, NULL, 1768089700);
INSERT INTO public.agent_runs VALUES ('5688e8aa-b2f4-47db-a4f2-d0761b384c73', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'assistant', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'completed', 100, 250, 3200, NULL, 1768089800);
INSERT INTO public.agent_runs VALUES ('6d45641f-38c9-41cd-a2cd-1e6620c653c9', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'assistant', NULL, 'failed', 5, 0, 300, 'provider error: ''timeout''
after 30s \ retry=0', 1768176000);
INSERT INTO public.agent_runs VALUES ('a5fc56d6-0a52-4700-92ce-1ec90d7084f0', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'classifier', NULL, 'completed', 40, 2, 120, NULL, 1770076800);
INSERT INTO public.agent_runs VALUES ('4b02330b-ba40-42cb-9615-e769a9a7c745', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'classifier', NULL, 'running', 0, 0, 0, NULL, 1770076805);
INSERT INTO public.agent_runs VALUES ('7453f094-87c9-4fb4-b738-4e32e907d48e', 'b7b66073-2df4-4858-b512-072c0dcd643b', 'assistant', NULL, 'completed', 7, 9, 800, NULL, 1768262400);
INSERT INTO public.agent_runs VALUES ('ec559c7e-658f-41b6-ad26-ac0f6f00ac97', 'b7b66073-2df4-4858-b512-072c0dcd643b', 'assistant', NULL, 'pending', 0, 0, 0, '', 1768262401);
INSERT INTO public.agent_runs VALUES ('86668f51-ab73-4a2d-8911-428dcbbc2863', '90061863-39ae-49a1-9686-0661d4cba6eb', 'support-desk', NULL, 'completed', 1000, 2000, 9999, NULL, 1770163200);


--
-- Data for Name: agent_templates; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.agent_templates VALUES ('ee4f7b1d-32a5-4ff8-bdc1-6e3799f74ef7', 'generic', 'assistant', 'General Assistant', 'A helpful general assistant.', '{"model": "llama3.2", "tools": [], "system_prompt": "You are a helpful assistant.", "max_tool_iterations": 5}', 1767225600);
INSERT INTO public.agent_templates VALUES ('2fb9a05f-ec06-4909-acee-731a10f873a2', 'generic', 'researcher', 'Researcher', 'Searches and summarises.', '{"model": "llama3.2", "tools": ["web_search", "calculator"], "system_prompt": "Research carefully.\nCite sources.", "max_tool_iterations": 8}', 1767225600);
INSERT INTO public.agent_templates VALUES ('2edfdf21-aafe-4d68-9741-cae28f99cea6', 'kasino', 'risk-analyst', 'Risk Analyst 🎰', NULL, '{"model": "llama3.2", "tools": [], "system_prompt": "Assess gambling risk. Say \"no\" politely.", "max_tool_iterations": 1}', 1767225600);
INSERT INTO public.agent_templates VALUES ('228efe99-eb6a-4273-9f76-6e378cda060f', 'ehb', 'support', 'EHB Support', 'Support für Kunden — äöü ß', '{"model": "llama3.2", "tools": ["search_kb"], "system_prompt": "Antworte auf Deutsch.", "max_tool_iterations": 3}', 1767225600);


--
-- Data for Name: alerts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.alerts VALUES ('6e5bc9e4-0bad-48cd-8111-b7464cdd74ea', 'critical', 'quota', 'Quota at 95% for ''acme-corp''', 'Tenant acme-corp used 95% of its monthly tokens.', false, 1768521600, NULL, NULL);
INSERT INTO public.alerts VALUES ('2292781a-26cb-4944-a939-20bcfcce507c', 'warning', 'agent', 'Agent "classifier" failing', '3 failures in 10 min
	last: timeout', true, 1768608000, 1768611600, 'ops@example.com');
INSERT INTO public.alerts VALUES ('600c8613-90a2-4a16-8faa-0f5170473a99', 'info', 'system', 'Nightly backup ✅', '', true, 1768694400, 1768694401, NULL);


--
-- Data for Name: api_keys; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.api_keys VALUES ('e33945b8-2b81-418b-8fab-4d3a290b53de', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'c5766a22ae6af1215c633ed7e9fdc5dddcf0b6ebe33fa4f2fd1520ff9111d77f', 'ares_07bcdc74', 'production', 1, 1767661200, NULL);
INSERT INTO public.api_keys VALUES ('64ec31fb-27aa-4f2b-a644-ff0986373f35', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', '39fced8c078721334af7ade5c1cc36c7a67455460ba20d296e1783b5ed71bfae', 'ares_4d7d78d3', 'ci — ''quoted'' \ key', 1, 1767664800, 4102444800);
INSERT INTO public.api_keys VALUES ('4e3fde2b-33a4-4787-be57-d240d3c4edad', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', '96d9ca41eef6c3aba84a44591bfcc55c98864f0e3ea52ff95263cd488011c200', 'ares_8064e176', 'revoked', 0, 1767668400, NULL);
INSERT INTO public.api_keys VALUES ('902731a8-2076-4dfc-ad56-f5d0603899c7', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'edc51415b732fe264c3e6eaf7f049bf4db0c78ad8cd2adffc5bf6255a9f78cd9', 'ares_fd8ea897', 'expired', 1, 1767672000, 1767312000);
INSERT INTO public.api_keys VALUES ('83df7b8c-dfb8-4bb2-be78-d73f7de74ced', 'b7b66073-2df4-4858-b512-072c0dcd643b', '0b1ce9abbd56f542272888bfdd3b72256eca108cf1f381b68f738c9daa345dd2', 'ares_295a4230', 'default', 1, 1767675600, NULL);
INSERT INTO public.api_keys VALUES ('b4305d61-7fee-4b73-91de-64db58dd6a89', '90061863-39ae-49a1-9686-0661d4cba6eb', '17d69a25e1fa6d3ef49596400e146a42b1062d0be83864f4ae5f7cbcf35f228a', 'ares_08b8d867', 'default', 1, 1767679200, NULL);
INSERT INTO public.api_keys VALUES ('bc26cd0d-8387-4215-9f5d-d6ddc3d1aa75', '4dd17a50-0c6a-46dd-b8e2-6cddffb01f84', '69e9f05c9a81856ba608b8d76e6dcd87af19a8d32ee6617a51864fb6e0d6286a', 'ares_ed0b3e37', '', 1, 1767682800, NULL);


--
-- Data for Name: conversations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.conversations VALUES ('8d54eb52-f001-4e25-96f9-d2c1a4a4952e', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'Trip to 東京 ✈️', 1768953600, 1768953660);
INSERT INTO public.conversations VALUES ('ctx_a1b2c3d4', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', NULL, 1769040000, 1769040004);
INSERT INTO public.conversations VALUES ('12dfef66-8cc1-4285-b596-f14fab7bfd43', 'ea4ab1d0-db14-41cb-b4f1-618a0bc67a73', '', 1769126400, 1769126401);
INSERT INTO public.conversations VALUES ('ctx_démo-1', '3a652441-7f17-4034-8a67-ecc34ef2e398', 'empty conversation, ''no'' messages', 1769212800, 1769212800);


--
-- Data for Name: daily_rate_limits; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.daily_rate_limits VALUES ('c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 1768089600, 2);
INSERT INTO public.daily_rate_limits VALUES ('c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 1768176000, 1);
INSERT INTO public.daily_rate_limits VALUES ('c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 1770076800, 2);
INSERT INTO public.daily_rate_limits VALUES ('b7b66073-2df4-4858-b512-072c0dcd643b', 1768262400, 4);
INSERT INTO public.daily_rate_limits VALUES ('90061863-39ae-49a1-9686-0661d4cba6eb', 1770163200, 1);


--
-- Data for Name: kasno_devices; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.kasno_devices VALUES ('f03e968b-c3b8-4680-80d8-1ff9dea041b1', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'Pixel 8 — Alice''s', 'tok_abc123', 'active', 'aggressive', 1769817600, 1768953600, 1769817600);
INSERT INTO public.kasno_devices VALUES ('e9c82217-fc67-4589-9fb3-0f3495dc83f1', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'iPad', NULL, 'paused', 'lenient', NULL, 1769040000, 1769040000);


--
-- Data for Name: kasno_events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.kasno_events VALUES ('c3b13e7b-663f-4ffe-847f-22c68af0094e', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'f03e968b-c3b8-4680-80d8-1ff9dea041b1', 'url_visit', 'high', 'browser', 'casino.example', NULL, 'Spin to win! 🎰 "free" bonus', 0.875, 'blocked', '{"ua": "Mozilla/5.0", "path": ["/", "slots"], "extra": {"ok": true, "depth": 2}}', 1769817600);
INSERT INTO public.kasno_events VALUES ('fefdfdc9-247b-4a52-b4d6-5039f48229b8', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'e9c82217-fc67-4589-9fb3-0f3495dc83f1', 'app_open', 'low', 'os', NULL, 'com.example.game', NULL, NULL, NULL, NULL, 1769904000);


--
-- Data for Name: kasno_risk_scores; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.kasno_risk_scores VALUES ('9bfae42d-c8ed-4ff9-a7f6-5f378519b01a', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'f03e968b-c3b8-4680-80d8-1ff9dea041b1', '2026-01-31', 0.625, '{"visits": 12, "night_use": 0.5}', 'rising', 'Risk rising;
watch evenings', 1769904000);
INSERT INTO public.kasno_risk_scores VALUES ('b18bd101-bb12-4e7f-8459-e511bb215d97', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'e9c82217-fc67-4589-9fb3-0f3495dc83f1', '2026-01-31', 0, NULL, NULL, NULL, 1769904000);


--
-- Data for Name: kasno_rules; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.kasno_rules VALUES ('af322bbb-5309-49eb-97ba-87bf538bc617', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'domain', '*.casino.example', 'block', 'admin', true, 17, 1768953600, 1768953600);
INSERT INTO public.kasno_rules VALUES ('1baa53c9-3796-43a6-bcff-cba82aad2c56', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'regex', '^bet(ting)?\d+$', 'warn', 'ml', false, 0, 1768953600, 1769126400);


--
-- Data for Name: memory_facts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.memory_facts VALUES ('f94a1a12-5281-4124-94c6-b47fe8fb86ba', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'personal', 'name', 'Alice', 1, 1769385600, 1769385600);
INSERT INTO public.memory_facts VALUES ('de13be0b-02a2-4af7-a017-18228805a2d7', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'preferences', 'favourite_food', '寿司 (sushi) 🍣', 0.85, 1769385600, 1769472000);
INSERT INTO public.memory_facts VALUES ('3bac0fef-9afa-485f-9d18-390fdda4e5b4', 'ea4ab1d0-db14-41cb-b4f1-618a0bc67a73', 'work', 'employer', 'O''Reilly \ Media
Ltd', 0.5, 1769385600, 1769385600);
INSERT INTO public.memory_facts VALUES ('a91e0589-d1cc-4fc4-af9a-7b058150fa4f', 'ea4ab1d0-db14-41cb-b4f1-618a0bc67a73', 'work', 'title', '', 0.1, 1769385600, 1769385600);


--
-- Data for Name: messages; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.messages VALUES ('1a93d227-d00c-472b-b475-6aba175ecd39', '8d54eb52-f001-4e25-96f9-d2c1a4a4952e', 'user', 'Hello! Plan a trip to Tokyo 🗼', 1768953600);
INSERT INTO public.messages VALUES ('91daac9a-56ce-452e-91d6-1279945ee1eb', '8d54eb52-f001-4e25-96f9-d2c1a4a4952e', 'assistant', 'Sure!
	Day 1: Asakusa
	Day 2: ''Shibuya'' & "Harajuku"
Path: C:\Users\alice\trip.txt', 1768953600);
INSERT INTO public.messages VALUES ('77437baa-9b64-4c14-9d42-0af087dd4931', '8d54eb52-f001-4e25-96f9-d2c1a4a4952e', 'user', 'What about ''Kyoto''?
And "Osaka"?', 1768953660);
INSERT INTO public.messages VALUES ('7bc8a7f1-b235-4f32-9cf7-ab40c778043b', '8d54eb52-f001-4e25-96f9-d2c1a4a4952e', 'assistant', '001. 東京の観光地 #1: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
002. 東京の観光地 #2: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
003. 東京の観光地 #3: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
004. 東京の観光地 #4: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
005. 東京の観光地 #5: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
006. 東京の観光地 #6: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
007. 東京の観光地 #7: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
008. 東京の観光地 #8: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
009. 東京の観光地 #9: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
010. 東京の観光地 #10: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
011. 東京の観光地 #11: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
012. 東京の観光地 #12: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
013. 東京の観光地 #13: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
014. 東京の観光地 #14: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
015. 東京の観光地 #15: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
016. 東京の観光地 #16: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
017. 東京の観光地 #17: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
018. 東京の観光地 #18: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
019. 東京の観光地 #19: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
020. 東京の観光地 #20: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
021. 東京の観光地 #21: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
022. 東京の観光地 #22: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
023. 東京の観光地 #23: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
024. 東京の観光地 #24: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
025. 東京の観光地 #25: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
026. 東京の観光地 #26: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
027. 東京の観光地 #27: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
028. 東京の観光地 #28: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
029. 東京の観光地 #29: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
030. 東京の観光地 #30: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
031. 東京の観光地 #31: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
032. 東京の観光地 #32: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
033. 東京の観光地 #33: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
034. 東京の観光地 #34: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
035. 東京の観光地 #35: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
036. 東京の観光地 #36: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
037. 東京の観光地 #37: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
038. 東京の観光地 #38: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
039. 東京の観光地 #39: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
040. 東京の観光地 #40: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
041. 東京の観光地 #41: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
042. 東京の観光地 #42: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
043. 東京の観光地 #43: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
044. 東京の観光地 #44: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
045. 東京の観光地 #45: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
046. 東京の観光地 #46: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
047. 東京の観光地 #47: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
048. 東京の観光地 #48: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
049. 東京の観光地 #49: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
050. 東京の観光地 #50: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
051. 東京の観光地 #51: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
052. 東京の観光地 #52: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
053. 東京の観光地 #53: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
054. 東京の観光地 #54: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
055. 東京の観光地 #55: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
056. 東京の観光地 #56: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
057. 東京の観光地 #57: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
058. 東京の観光地 #58: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
059. 東京の観光地 #59: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
060. 東京の観光地 #60: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
061. 東京の観光地 #61: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
062. 東京の観光地 #62: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
063. 東京の観光地 #63: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
064. 東京の観光地 #64: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
065. 東京の観光地 #65: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
066. 東京の観光地 #66: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
067. 東京の観光地 #67: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
068. 東京の観光地 #68: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
069. 東京の観光地 #69: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
070. 東京の観光地 #70: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
071. 東京の観光地 #71: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
072. 東京の観光地 #72: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
073. 東京の観光地 #73: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
074. 東京の観光地 #74: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
075. 東京の観光地 #75: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
076. 東京の観光地 #76: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
077. 東京の観光地 #77: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
078. 東京の観光地 #78: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
079. 東京の観光地 #79: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣
080. 東京の観光地 #80: 浅草寺, 渋谷 — "quote" ''single'' \back\ 	tab 🍣', 1768953660);
INSERT INTO public.messages VALUES ('e1a8e338-0401-47c7-82b4-9211e09797a0', 'ctx_a1b2c3d4', 'system', 'You are helpful.', 1769040000);
INSERT INTO public.messages VALUES ('986f0365-c012-487d-a5a7-364495d5acbb', 'ctx_a1b2c3d4', 'user', '\N', 1769040001);
INSERT INTO public.messages VALUES ('ba346c72-23eb-4272-863f-0b3332ceb48c', 'ctx_a1b2c3d4', 'assistant', '\.', 1769040002);
INSERT INTO public.messages VALUES ('48d10dd4-b424-49f7-80cc-f6e1afd04ede', 'ctx_a1b2c3d4', 'user', '', 1769040003);
INSERT INTO public.messages VALUES ('af6709dd-7c7a-4eed-a371-273a69177fd9', 'ctx_a1b2c3d4', 'assistant', 'line1
line2
\.
''; DROP TABLE users; --
$$ dollar $$ $tag$ x $tag$
-- not a comment
/* nor this */ ;', 1769040004);
INSERT INTO public.messages VALUES ('444a0a00-2b1d-4f1e-99f6-270e4b8f8399', 'ctx_a1b2c3d4', 'user', 'inserted last, but its timestamp is the earliest of the conversation', 1769039990);
INSERT INTO public.messages VALUES ('083e6639-11b0-4450-9917-dfdb112dc18a', '12dfef66-8cc1-4285-b596-f14fab7bfd43', 'user', 'Ping', 1769126400);
INSERT INTO public.messages VALUES ('492473f8-0d86-4cd8-ba01-9b3e32aea33b', '12dfef66-8cc1-4285-b596-f14fab7bfd43', 'assistant', 'Pong 🏓', 1769126401);


--
-- Data for Name: monthly_usage_cache; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.monthly_usage_cache VALUES ('c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 1767225600, 3, 200);
INSERT INTO public.monthly_usage_cache VALUES ('c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 1769904000, 2, 350);
INSERT INTO public.monthly_usage_cache VALUES ('b7b66073-2df4-4858-b512-072c0dcd643b', 1767225600, 4, 16);
INSERT INTO public.monthly_usage_cache VALUES ('90061863-39ae-49a1-9686-0661d4cba6eb', 1769904000, 1, 3000);


--
-- Data for Name: preferences; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.preferences VALUES ('41890585-fb0a-40b6-a0a4-df399a9ccc3e', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'ui', 'theme', 'dark', 0.9, 1769558400);
INSERT INTO public.preferences VALUES ('6327a0fc-409d-4a81-8527-513befa67136', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'ui', 'language', 'ja-JP', 1, 1769558400);
INSERT INTO public.preferences VALUES ('4efb37af-cf24-4208-b492-b97ce37ee2ef', 'ea4ab1d0-db14-41cb-b4f1-618a0bc67a73', 'communication', 'tone', 'formal, "no emoji"', 0.75, 1769558400);


--
-- Data for Name: sessions; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.sessions VALUES ('58aa34bf-5c23-40c5-a9a9-289108596149', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'bf2be17b91b299384266cb862311a5e9a61e689ffe75f3515460e1022c4359ad', 1770682500, 1770681600);
INSERT INTO public.sessions VALUES ('ed2dd0b8-e9da-46ac-96e4-b5c738e512ac', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'd85956292bfa426b7a1ee0edb1e99950dc02a1dcce10f7045635408e013c6b37', 1770768900, 1770768000);
INSERT INTO public.sessions VALUES ('b7302287-e9a2-48ff-a3bd-9c59d5c08b76', 'ea4ab1d0-db14-41cb-b4f1-618a0bc67a73', '4a993fde14d290d88f58c43e7c8f4261c16805b68c4a4fb9c3c18635fca944bd', 1770855300, 1770854400);


--
-- Data for Name: tenant_agents; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.tenant_agents VALUES ('0d5f5517-2011-453f-bd5f-3af19a7eb414', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'assistant', 'General Assistant', 'A helpful general assistant.', '{"model": "llama3.2", "tools": [], "agent_type": "chat", "max_tokens": 1024, "system_prompt": "You are a helpful assistant.", "max_tool_iterations": 5}', true, 1767830400, 1767830400);
INSERT INTO public.tenant_agents VALUES ('0b652317-6c51-4ade-ae76-84d4f4ec3cf8', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'classifier', 'Classifier ''v2''', 'Labels tickets.
Returns JSON.', '{"empty": {}, "model": "gpt-4o-mini", "tools": [], "labels": ["bug", "feature", "质量"], "nothing": null, "thresholds": {"bug": 0.7, "feature": 0.5}, "system_prompt": "Classify:\n\t- \"bug\"\n\t- ''feature''\n\\end", "max_tool_iterations": 1}', false, 1767916800, 1768003200);
INSERT INTO public.tenant_agents VALUES ('4fcd2b63-d44c-4b5a-9bfe-f4f848949669', 'b7b66073-2df4-4858-b512-072c0dcd643b', 'assistant', 'Assistant 🤖', NULL, '{"model": "llama3.2", "tools": [], "system_prompt": ""}', true, 1767916800, 1767916800);
INSERT INTO public.tenant_agents VALUES ('44174414-8754-41ca-b8c7-49db696d704f', '90061863-39ae-49a1-9686-0661d4cba6eb', 'support-desk', 'Support Desk', '', '{"model": "gpt-4o", "tools": ["search_kb"], "metadata": {"tags": ["a", "b"], "owner": "ops", "limits": {"rpm": 60, "burst": 1.5}}, "max_tool_iterations": 4}', true, 1768003200, 1768003200);
INSERT INTO public.tenant_agents VALUES ('9938a48d-b756-4987-8ac2-3a02a9832bc1', 'deleted-tenant-0000', 'ghost', 'Ghost agent of a deleted tenant', NULL, '{"model": "llama3.2"}', true, 1768003200, 1768003200);


--
-- Data for Name: tenants; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.tenants VALUES ('c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'acme-corp', 'pro', 1767229200, 1768089600);
INSERT INTO public.tenants VALUES ('b7b66073-2df4-4858-b512-072c0dcd643b', 'O''Brien & Sons "Ünïcødé" \ 日本 🚀', 'free', 1767398400, 1767398400);
INSERT INTO public.tenants VALUES ('90061863-39ae-49a1-9686-0661d4cba6eb', 'acme-corp', 'enterprise', 1767484800, 1767484800);
INSERT INTO public.tenants VALUES ('4dd17a50-0c6a-46dd-b8e2-6cddffb01f84', 'legacy	tenant
with control chars', 'Platinum', 1767571200, 1767657600);


--
-- Data for Name: usage_events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.usage_events VALUES ('d6dfcfba-ce93-44bd-8bdf-260bb65da548', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'http', 1, 120, NULL, 0, 0, true, 900, 1768089700);
INSERT INTO public.usage_events VALUES ('91731868-343c-4b95-b53c-d940c2512481', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'http', 1, 80, NULL, 0, 0, true, 700, 1768089800);
INSERT INTO public.usage_events VALUES ('2cb97130-f926-4201-9a23-b974437711ff', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'http', 1, 0, NULL, 0, 0, false, 5, 1768176000);
INSERT INTO public.usage_events VALUES ('db31f586-9892-4897-bb56-c7f2e155f845', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'mcp', 1, 100, 'mcp.ares_run_agent', 50, 100, true, 1200, 1770076800);
INSERT INTO public.usage_events VALUES ('c105f758-f424-439e-a0ef-845d3be21041', 'c9fd800e-ef90-4516-a1fa-fc9b1759ac03', 'mcp', 1, 250, 'mcp.ares_run_agent', 250, 250, false, 2500, 1770076860);
INSERT INTO public.usage_events VALUES ('4a713a6f-7570-4eb5-bde3-c258742de793', 'b7b66073-2df4-4858-b512-072c0dcd643b', 'http', 1, 16, NULL, 0, 0, true, 800, 1768262400);
INSERT INTO public.usage_events VALUES ('95ecb6ec-4c43-4887-b574-29d93665f32d', 'b7b66073-2df4-4858-b512-072c0dcd643b', 'http', 3, 0, NULL, 0, 0, true, 10, 1768262401);
INSERT INTO public.usage_events VALUES ('8b22787b-a257-4fb2-8c47-b1d6e07682c3', '90061863-39ae-49a1-9686-0661d4cba6eb', 'http', 1, 3000, NULL, 0, 0, true, 9999, 1770163200);
INSERT INTO public.usage_events VALUES ('7b0261b5-5929-42d8-ab67-697e9a2830ac', 'deleted-tenant-0000', 'http', 1, 1, NULL, 0, 0, true, 1, 1767225601);


--
-- Data for Name: user_agents; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.user_agents VALUES ('46057716-5bd1-4931-bfdf-89b58c5dafa5', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'trip-planner', 'Trip Planner ✈️', 'Plans trips.
Multi-line description.', 'llama3.2', 'You are a travel agent.
	Always answer in ''single quotes'' and \backslashes\.', '["calculator","web_search"]', 7, true, '{"temperature": 0.2, "nested": {"a": [1, 2, {"b": null}], "ü": "日本"}}', true, 42, 17, 4, 'user', 1769644800, 1769731200);
INSERT INTO public.user_agents VALUES ('f3ba3db6-ea7b-4495-b105-56b1abca2855', 'ea4ab1d0-db14-41cb-b4f1-618a0bc67a73', 'private-bot', NULL, NULL, 'gpt-4o-mini', NULL, '[]', 10, false, '{}', false, 0, 0, 0, 'user', 1769644800, 1769644800);
INSERT INTO public.user_agents VALUES ('3af1dbbb-3b23-4093-b278-cdbbf8cd1c94', 'f9eaf881-323b-4b91-9ea6-01208f4079d5', 'code-helper', 'Code Helper', '', 'qwen2.5-coder', '', '["code_exec"]', 3, false, '{}', false, 5, 0, 0, 'toon', 1769817600, 1769817600);


--
-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.users VALUES ('f9eaf881-323b-4b91-9ea6-01208f4079d5', 'alice@example.com', '$argon2id$v=19$m=19456,t=2,p=1$ahzqPpzh0hfiRSyEt2BSLQ$G8Hk8Qv2HhYY0GGLQprkgeoHbOrg+bmuXNdq8twG3P0', 'Alice Anderson', 1767744000, 1767830400);
INSERT INTO public.users VALUES ('ea4ab1d0-db14-41cb-b4f1-618a0bc67a73', 'bob+ares@example.org', '$argon2id$v=19$m=19456,t=2,p=1$9gPiSYMh4VulQzczi5fbFA$lK1H1GCfZ2LT9L3p3F2amjBvkA94dDWOVFwp426uMIg', 'Bob ''the builder'' O\Neil 🛠️', 1767744600, 1767744600);
INSERT INTO public.users VALUES ('3a652441-7f17-4034-8a67-ecc34ef2e398', 'Carol.Case@Example.COM', '$argon2id$v=19$m=65536,t=3,p=4$4IGhW3AYcQnbzemyw3EgKQ$n/QMv9ZMsqv7RzZBJLRVniU3OBLNwfzan9q5DpIjKuw', '', 1767745200, 1767745200);
INSERT INTO public.users VALUES ('a44b713a-4460-492f-b69f-4c4645359323', 'hurl.user1@example.com', '$argon2id$v=19$m=19456,t=2,p=1$EJceqyOfqJMtxrOOZmM6RA$66+SDLlNdeJ/OqGW2HIloHFh6duBOrVY86k0lpoRsnU', 'Hurl User', 1767745800, 1767745800);


--
-- Name: _sqlx_migrations _sqlx_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public._sqlx_migrations
    ADD CONSTRAINT _sqlx_migrations_pkey PRIMARY KEY (version);


--
-- Name: admin_audit_log admin_audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.admin_audit_log
    ADD CONSTRAINT admin_audit_log_pkey PRIMARY KEY (id);


--
-- Name: agent_config_versions agent_config_versions_agent_id_version_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_config_versions
    ADD CONSTRAINT agent_config_versions_agent_id_version_key UNIQUE (agent_id, version);


--
-- Name: agent_config_versions agent_config_versions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_config_versions
    ADD CONSTRAINT agent_config_versions_pkey PRIMARY KEY (id);


--
-- Name: agent_runs agent_runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_runs
    ADD CONSTRAINT agent_runs_pkey PRIMARY KEY (id);


--
-- Name: agent_templates agent_templates_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_templates
    ADD CONSTRAINT agent_templates_pkey PRIMARY KEY (id);


--
-- Name: agent_templates agent_templates_product_type_agent_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_templates
    ADD CONSTRAINT agent_templates_product_type_agent_name_key UNIQUE (product_type, agent_name);


--
-- Name: alerts alerts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_pkey PRIMARY KEY (id);


--
-- Name: api_keys api_keys_key_prefix_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_key_prefix_key UNIQUE (key_prefix);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);


--
-- Name: conversations conversations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversations
    ADD CONSTRAINT conversations_pkey PRIMARY KEY (id);


--
-- Name: daily_rate_limits daily_rate_limits_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.daily_rate_limits
    ADD CONSTRAINT daily_rate_limits_pkey PRIMARY KEY (tenant_id, usage_date);


--
-- Name: kasno_devices kasno_devices_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.kasno_devices
    ADD CONSTRAINT kasno_devices_pkey PRIMARY KEY (id);


--
-- Name: kasno_events kasno_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.kasno_events
    ADD CONSTRAINT kasno_events_pkey PRIMARY KEY (id);


--
-- Name: kasno_risk_scores kasno_risk_scores_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.kasno_risk_scores
    ADD CONSTRAINT kasno_risk_scores_pkey PRIMARY KEY (id);


--
-- Name: kasno_rules kasno_rules_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.kasno_rules
    ADD CONSTRAINT kasno_rules_pkey PRIMARY KEY (id);


--
-- Name: memory_facts memory_facts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.memory_facts
    ADD CONSTRAINT memory_facts_pkey PRIMARY KEY (id);


--
-- Name: messages messages_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);


--
-- Name: monthly_usage_cache monthly_usage_cache_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.monthly_usage_cache
    ADD CONSTRAINT monthly_usage_cache_pkey PRIMARY KEY (tenant_id, usage_month);


--
-- Name: preferences preferences_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.preferences
    ADD CONSTRAINT preferences_pkey PRIMARY KEY (user_id, category, key);


--
-- Name: sessions sessions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (id);


--
-- Name: sessions sessions_token_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_token_hash_key UNIQUE (token_hash);


--
-- Name: tenant_agents tenant_agents_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenant_agents
    ADD CONSTRAINT tenant_agents_pkey PRIMARY KEY (id);


--
-- Name: tenant_agents tenant_agents_tenant_id_agent_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenant_agents
    ADD CONSTRAINT tenant_agents_tenant_id_agent_name_key UNIQUE (tenant_id, agent_name);


--
-- Name: tenants tenants_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenants
    ADD CONSTRAINT tenants_pkey PRIMARY KEY (id);


--
-- Name: usage_events usage_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.usage_events
    ADD CONSTRAINT usage_events_pkey PRIMARY KEY (id);


--
-- Name: user_agents user_agents_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.user_agents
    ADD CONSTRAINT user_agents_pkey PRIMARY KEY (id);


--
-- Name: user_agents user_agents_user_id_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.user_agents
    ADD CONSTRAINT user_agents_user_id_name_key UNIQUE (user_id, name);


--
-- Name: users users_email_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_email_key UNIQUE (email);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: idx_admin_audit_log_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_admin_audit_log_created_at ON public.admin_audit_log USING btree (created_at);


--
-- Name: idx_admin_audit_log_resource; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_admin_audit_log_resource ON public.admin_audit_log USING btree (resource_type, resource_id);


--
-- Name: idx_agent_runs_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_agent_runs_created_at ON public.agent_runs USING btree (created_at);


--
-- Name: idx_agent_runs_tenant_agent; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_agent_runs_tenant_agent ON public.agent_runs USING btree (tenant_id, agent_name);


--
-- Name: idx_agent_templates_product_type; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_agent_templates_product_type ON public.agent_templates USING btree (product_type);


--
-- Name: idx_alerts_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_alerts_created_at ON public.alerts USING btree (created_at);


--
-- Name: idx_alerts_resolved; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_alerts_resolved ON public.alerts USING btree (resolved);


--
-- Name: idx_alerts_severity; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_alerts_severity ON public.alerts USING btree (severity);


--
-- Name: idx_api_keys_key_prefix; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_api_keys_key_prefix ON public.api_keys USING btree (key_prefix);


--
-- Name: idx_api_keys_tenant_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_api_keys_tenant_id ON public.api_keys USING btree (tenant_id);


--
-- Name: idx_conversations_user_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_conversations_user_id ON public.conversations USING btree (user_id);


--
-- Name: idx_kasno_events_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_kasno_events_created_at ON public.kasno_events USING btree (created_at);


--
-- Name: idx_kasno_events_device_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_kasno_events_device_id ON public.kasno_events USING btree (device_id);


--
-- Name: idx_kasno_events_severity; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_kasno_events_severity ON public.kasno_events USING btree (severity);


--
-- Name: idx_kasno_events_tenant_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_kasno_events_tenant_id ON public.kasno_events USING btree (tenant_id);


--
-- Name: idx_kasno_risk_scores_device_date; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX idx_kasno_risk_scores_device_date ON public.kasno_risk_scores USING btree (device_id, score_date);


--
-- Name: idx_memory_facts_user_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_memory_facts_user_id ON public.memory_facts USING btree (user_id);


--
-- Name: idx_messages_conversation_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_messages_conversation_id ON public.messages USING btree (conversation_id);


--
-- Name: idx_sessions_token_hash; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_sessions_token_hash ON public.sessions USING btree (token_hash);


--
-- Name: idx_sessions_user_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_sessions_user_id ON public.sessions USING btree (user_id);


--
-- Name: idx_tenant_agents_tenant_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_tenant_agents_tenant_id ON public.tenant_agents USING btree (tenant_id);


--
-- Name: idx_tenants_name; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_tenants_name ON public.tenants USING btree (name);


--
-- Name: idx_usage_events_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_usage_events_created_at ON public.usage_events USING btree (created_at);


--
-- Name: idx_usage_events_source; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_usage_events_source ON public.usage_events USING btree (source);


--
-- Name: idx_usage_events_tenant_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_usage_events_tenant_id ON public.usage_events USING btree (tenant_id);


--
-- Name: idx_user_agents_public; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_user_agents_public ON public.user_agents USING btree (is_public, usage_count DESC);


--
-- Name: agent_runs agent_runs_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_runs
    ADD CONSTRAINT agent_runs_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: api_keys api_keys_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;


--
-- Name: messages messages_conversation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES public.conversations(id) ON DELETE CASCADE;


--
-- Name: sessions sessions_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--

\unrestrict I3XJ7EHD3YGvScrnYC9tkIUNUoUoeCkjX07oDrHVrds5hh9RT7Gmows1BEFbdzC

