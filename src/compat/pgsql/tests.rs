use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::time::Instant;

const COPY_DUMP: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postgres/sample_dump_copy.sql"));
const INSERTS_DUMP: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postgres/sample_dump_inserts.sql"));
const COLUMN_INSERTS_DUMP: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postgres/sample_dump_column_inserts.sql"));
const SECRETS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postgres/seed_secrets.json"));

fn read_all(dump: &str) -> Result<Vec<Row>, DumpError> {
    DumpReader::new(dump.as_bytes()).collect()
}

fn rows(dump: &str) -> Vec<Row> {
    read_all(dump).unwrap_or_else(|e| panic!("{e}"))
}

fn error(dump: &str) -> DumpError {
    match read_all(dump) {
        Ok(rows) => panic!("expected an error, got {} rows", rows.len()),
        Err(e) => e,
    }
}

/// Reads everything; checks that at most one error comes and that it is the last item.
fn drain(bytes: &[u8]) {
    let mut reader = DumpReader::new(bytes);
    while let Some(item) = reader.next() {
        if item.is_err() {
            assert!(reader.next().is_none(), "items after an error");
            assert!(reader.next().is_none(), "items after an error");
            return;
        }
    }
}

fn values(row: &Row) -> Vec<Option<&str>> {
    row.values.iter().map(Option::as_deref).collect()
}

fn secrets() -> serde_json::Value {
    serde_json::from_str(SECRETS).unwrap()
}

fn find<'r>(rows: &'r [Row], table: &str, id: &str) -> &'r Row {
    rows.iter()
        .find(|r| r.table == table && r.get("id") == Some(id))
        .unwrap_or_else(|| panic!("no {table} row with id {id}"))
}

// ---- the real pg_dump fixtures -------------------------------------------------------

#[test]
fn sample_dumps_give_identical_rows() {
    let copy = rows(COPY_DUMP);
    for (name, other) in [("inserts", rows(INSERTS_DUMP)), ("column-inserts", rows(COLUMN_INSERTS_DUMP))] {
        assert_eq!(copy.len(), other.len(), "{name}: row count");
        for (a, b) in copy.iter().zip(&other) {
            assert_eq!(a.table, b.table, "{name}: line {} vs {}", a.line, b.line);
            assert_eq!(a.columns, b.columns, "{name}: {} line {} vs {}", a.table, a.line, b.line);
            assert_eq!(a.values, b.values, "{name}: {} line {} vs {}", a.table, a.line, b.line);
        }
    }
}

#[test]
fn sample_dumps_have_the_expected_row_counts() {
    let expected: BTreeMap<String, usize> =
        serde_json::from_value(secrets()["expected"]["row_counts"].clone()).unwrap();
    for dump in [COPY_DUMP, INSERTS_DUMP, COLUMN_INSERTS_DUMP] {
        let mut counts = BTreeMap::new();
        for row in rows(dump) {
            *counts.entry(row.table).or_insert(0usize) += 1;
        }
        assert_eq!(counts, expected);
    }
}

#[test]
fn sample_dumps_keep_tricky_values() {
    let secrets = secrets();
    for dump in [COPY_DUMP, INSERTS_DUMP, COLUMN_INSERTS_DUMP] {
        let rows = rows(dump);
        let mut seen = Vec::new();
        for conversation in secrets["conversations"].as_array().unwrap() {
            let id = conversation["id"].as_str().unwrap();
            let row = find(&rows, "conversations", id);
            assert_eq!(row.get("title"), conversation["title"].as_str(), "title of {id}");
            assert!(row.has("title"));
            for message in conversation["messages_in_order"].as_array().unwrap() {
                let row = find(&rows, "messages", message["id"].as_str().unwrap());
                let content = message["content"].as_str().unwrap();
                assert_eq!(row.get("content"), Some(content));
                assert_eq!(row.get("role"), message["role"].as_str());
                assert_eq!(row.get("timestamp"), Some(message["timestamp"].to_string().as_str()));
                assert_eq!(row.get("conversation_id"), Some(id));
                seen.push(content.to_owned());
            }
        }
        for tricky in ["\\N", "\\.", ""] {
            assert!(seen.iter().any(|c| c == tricky), "message {tricky:?}");
        }
        assert!(seen.iter().any(|c| c.starts_with("line1\r\nline2\r\n\\.\n'; DROP TABLE users; --")));
        assert!(seen.iter().any(|c| c.len() > 5000 && c.contains("東京の観光地") && c.contains('\t')));
        for tenant in secrets["tenants"].as_array().unwrap() {
            let row = find(&rows, "tenants", tenant["id"].as_str().unwrap());
            assert_eq!(row.get("name"), tenant["name"].as_str());
            assert_eq!(row.get("tier"), tenant["tier"].as_str());
        }
        for key in secrets["api_keys"].as_array().unwrap() {
            let row = find(&rows, "api_keys", key["id"].as_str().unwrap());
            assert_eq!(row.get("name"), key["name"].as_str());
            assert_eq!(row.get("key_hash"), key["key_hash"].as_str());
            assert_eq!(row.get("expires_at").map(str::to_owned), key["expires_at"].as_i64().map(|n| n.to_string()));
            assert!(row.has("expires_at"));
        }
        for user in secrets["users"].as_array().unwrap() {
            let row = find(&rows, "users", user["id"].as_str().unwrap());
            assert_eq!(row.get("name"), user["name"].as_str());
            assert_eq!(row.get("email"), user["email"].as_str());
        }
        let migration = rows.iter().find(|r| r.table == "_sqlx_migrations" && r.get("version") == Some("0")).unwrap();
        assert!(migration.get("checksum").unwrap().starts_with("\\x55510e8c"));
        assert_eq!(migration.get("checksum").unwrap().len(), 2 + 96);
        assert_eq!(migration.get("success"), Some("t"));
        assert_eq!(migration.get("installed_on"), Some("2026-01-01 00:00:00+00"));
        let version = find(&rows, "agent_config_versions", "89676d98-b429-4114-9171-9e5b3faaeb43");
        assert_eq!(version.get("created_at"), Some("2026-02-01 12:30:45.123456+00"));
        assert_eq!(version.get("is_active"), Some("t"));
        let config: serde_json::Value = serde_json::from_str(version.get("config_json").unwrap()).unwrap();
        assert_eq!(config["tools"][0], "calculator");
        let older = find(&rows, "agent_config_versions", "7b1c0579-1bb1-4a76-940e-9bffd2980d03");
        assert_eq!(older.get("is_active"), Some("f"));
        let audit = find(&rows, "admin_audit_log", "78a6871a-6718-49a8-9b3f-6546283d549f");
        assert_eq!(audit.get("details"), None);
        assert!(audit.has("details"));
        assert_eq!(audit.get("absent"), None);
        assert!(!audit.has("absent"));
    }
}

#[test]
fn sample_dump_reports_tables_lines_and_bytes() {
    let mut reader = DumpReader::new(COPY_DUMP.as_bytes());
    let first = reader.next().unwrap().unwrap();
    assert_eq!((first.table.as_str(), first.line), ("_sqlx_migrations", 395));
    let rest: Vec<Row> = reader.by_ref().map(Result::unwrap).collect();
    assert_eq!(rest.iter().find(|r| r.table == "messages").map(|r| r.line), Some(566));
    assert_eq!(reader.bytes_read(), COPY_DUMP.len() as u64);
    assert_eq!(reader.line(), COPY_DUMP.lines().count());
    let tables = reader.tables();
    assert_eq!(tables.len(), 23);
    assert_eq!(
        tables["messages"].as_slice(),
        ["id", "conversation_id", "role", "content", "timestamp"].map(String::from).as_slice()
    );
    // Rows of one table share the column list.
    let messages: Vec<&Row> = rest.iter().filter(|r| r.table == "messages").collect();
    assert!(messages.windows(2).all(|w| Arc::ptr_eq(&w[0].columns, &w[1].columns)));

    let inserts = rows(INSERTS_DUMP);
    let first_message = inserts.iter().find(|r| r.table == "messages").unwrap();
    assert_eq!(first_message.line, 541);
}

#[test]
fn crlf_copy_dump_reads_the_same() {
    let crlf = COPY_DUMP.replace('\n', "\r\n");
    let a = rows(COPY_DUMP);
    let b = rows(&crlf);
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.values, b.values);
    }
}

// ---- constructs ----------------------------------------------------------------------

const CONSTRUCTS: &str = r#"--
\restrict abc123
SET standard_conforming_strings = on;
SET client_encoding = 'UTF8';
CREATE TABLE public."Order" (
id bigint DEFAULT nextval('public.order_id_seq'::regclass) NOT NULL,
"User" text,
"check" text,
total numeric(10,2),
CONSTRAINT order_check CHECK ((total > (0)::numeric)),
tags text[],
doubled integer GENERATED ALWAYS AS ((id * 2)) STORED
);
CREATE FUNCTION public.f() RETURNS text
LANGUAGE plpgsql
AS $_$
BEGIN
  -- ' " INSERT INTO nosuch VALUES (1);
\.
COPY nosuch FROM stdin;
  RETURN 'a;b';
END;
$_$;
CREATE FUNCTION public.g() RETURNS integer LANGUAGE sql
BEGIN ATOMIC
 INSERT INTO nosuch VALUES (1);
 SELECT CASE WHEN true THEN 1 ELSE 2 END;
END;
/* block /* nested */ comment ; */ INSERT INTO public."Order" VALUES (-1, E'it''s\\n\ttab\x41\101\u00e9\U0001F680\uD83D\uDE00', $$dollar ' " ; \$$, 1.5e-3, '{a,"b c"}'::text[], DEFAULT);
INSERT INTO public."Order" ("User", id) VALUES ('x'::character varying(10), 2),
  ('y', +3) ON CONFLICT DO NOTHING;
INSERT INTO public."Order" (id, tags, total) OVERRIDING SYSTEM VALUE VALUES (4, ARRAY['a', NULL, 'b c', '', 'null', 'q"\'], (-7)), (5, ARRAY[ARRAY[1,2],ARRAY[3,-4]]::integer[], '2026-01-01 00:00:00+00'::timestamp with time zone);
SET standard_conforming_strings = off;
INSERT INTO public."Order" (id, "User") VALUES (6, 'back\\slash\n'); SELECT 1; INSERT INTO public."Order" (id, "check") VALUES (7, B'0101');
INSERT INTO public."Order" (id, tags) VALUES (8, ARRAY[[true, false]]), (9, ARRAY[]::text[]), (10, X'1F'::bit varying);
INSERT INTO public."Order" (id, total) VALUES (11, 'NaN'::numeric), (12, NULL::numeric), (13, $tag$a$$b$tag$), (14, N'n');
COPY "Order" (id, "User") FROM stdin;
15	\\N
16	\N
\.
\unrestrict abc123
"#;

#[test]
fn reads_every_supported_construct() {
    let rows = rows(CONSTRUCTS);
    let all: Vec<(usize, Vec<Option<&str>>)> = rows.iter().map(|r| (r.line, values(r))).collect();
    assert!(rows.iter().all(|r| r.table == "Order"));
    let full = ["id", "User", "check", "total", "tags", "doubled"].map(String::from);
    let mut reader = DumpReader::new(CONSTRUCTS.as_bytes());
    reader.by_ref().for_each(drop);
    assert_eq!(reader.tables()["Order"].as_slice(), full.as_slice());

    assert_eq!(rows[0].columns.as_slice(), &full[..5], "DEFAULT leaves the generated column out");
    assert_eq!(
        all[0],
        (
            29,
            vec![
                Some("-1"),
                Some("it's\\n\ttabAAé🚀😀"),
                Some("dollar ' \" ; \\"),
                Some("1.5e-3"),
                Some("{a,\"b c\"}"),
            ]
        )
    );
    assert_eq!(all[1], (30, vec![Some("x"), Some("2")]));
    assert_eq!(all[2], (31, vec![Some("y"), Some("3")]));
    assert_eq!(rows[1].columns.as_slice(), ["User", "id"].map(String::from).as_slice());
    assert!(Arc::ptr_eq(&rows[1].columns, &rows[2].columns));
    assert_eq!(all[3].1, vec![Some("4"), Some(r#"{a,NULL,"b c","","null","q\"\\"}"#), Some("-7")]);
    assert_eq!(all[4].1, vec![Some("5"), Some("{{1,2},{3,-4}}"), Some("2026-01-01 00:00:00+00")]);
    assert_eq!(all[5].1, vec![Some("6"), Some("back\\slash\n")]);
    assert_eq!(all[6].1, vec![Some("7"), Some("0101")]);
    assert_eq!(all[7].1, vec![Some("8"), Some("{{t,f}}")]);
    assert_eq!(all[8].1, vec![Some("9"), Some("{}")]);
    assert_eq!(all[9].1, vec![Some("10"), Some("00011111")]);
    assert_eq!(all[10].1, vec![Some("11"), Some("NaN")]);
    assert_eq!(all[11].1, vec![Some("12"), None]);
    assert_eq!(all[12].1, vec![Some("13"), Some("a$$b")]);
    assert_eq!(all[13].1, vec![Some("14"), Some("n")]);
    assert_eq!(all[14], (38, vec![Some("15"), Some("\\N")]));
    assert_eq!(all[15], (39, vec![Some("16"), None]));
    assert_eq!(rows.len(), 16);
}

#[test]
fn column_order_comes_from_create_table_with_inheritance_and_partitions() {
    let dump = "CREATE TABLE p (a int, b text);\nCREATE TABLE c (x int, a int) INHERITS (p);\n\
                INSERT INTO c VALUES (1, 'b', 2);\nCREATE TABLE part PARTITION OF p FOR VALUES IN (1);\n\
                COPY part FROM stdin;\n1\tz\n\\.\nINSERT INTO t DEFAULT VALUES;\n";
    let rows = rows(dump);
    assert_eq!(rows[0].columns.as_slice(), ["a", "b", "x"].map(String::from).as_slice());
    assert_eq!(rows[0].get("x"), Some("2"));
    assert_eq!((rows[1].table.as_str(), rows[1].get("b")), ("part", Some("z")));
    assert_eq!((rows[2].table.as_str(), rows[2].columns.len()), ("t", 0));
}

#[test]
fn multi_row_inserts_give_each_tuple_its_line() {
    // pg_dump --rows-per-insert layout.
    let dump = "INSERT INTO public.t (a, b) VALUES\n\t(1, 'x'),\n\t(2, 'multi\nline'),\n\t(3, NULL);\n";
    let rows = rows(dump);
    let got: Vec<(usize, Vec<Option<&str>>)> = rows.iter().map(|r| (r.line, values(r))).collect();
    assert_eq!(
        got,
        vec![(2, vec![Some("1"), Some("x")]), (3, vec![Some("2"), Some("multi\nline")]), (5, vec![Some("3"), None]),]
    );
}

#[test]
fn statements_share_lines_and_comments_are_skipped() {
    let dump = "SET a = 1; INSERT INTO t (a) VALUES (1); -- trailing ; comment\n  \\connect other\n\
                INSERT INTO t (a) VALUES (2); INSERT INTO t (a)\n-- inside; a comment\nVALUES (3)\n;\n";
    let got: Vec<(usize, Option<String>)> = rows(dump).into_iter().map(|r| (r.line, r.values[0].clone())).collect();
    assert_eq!(got, vec![(1, Some("1".into())), (3, Some("2".into())), (5, Some("3".into()))]);
}

// ---- malformed input -----------------------------------------------------------------

#[test]
fn malformed_dumps_fail_at_the_right_line() {
    let check = |dump: &str, line: usize, needle: &str| {
        let e = error(dump);
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains(needle), "{e} should mention {needle:?}");
    };
    check("SET x = 1;\nINSERT INTO t (a) VALUES ('abc\nmore\n", 2, "unterminated quoted string");
    check("SELECT 1;\n\nCREATE FUNCTION f() AS $x$ body\n", 3, "unterminated dollar-quoted");
    check("/* never\nclosed", 1, "unterminated /* comment");
    check("SELECT \"open\n", 1, "unterminated quoted identifier");
    check("INSERT INTO t (a) VALUES (1)\n", 1, "not terminated by `;`");
    check("COPY t (a, b) FROM stdin;\n1\t2\n3\n\\.\n", 3, "1 fields, expected 2");
    check("COPY t (a, b) FROM stdin;\n1\t2\t3\n\\.\n", 2, "3 fields, expected 2");
    check("COPY t (a) FROM stdin;\nok\nbad \\q\n\\.\n", 3, "bad escape \\q");
    check("COPY t (a) FROM stdin;\nbad \\x\n\\.\n", 2, "\\x without hex");
    check("COPY t (a) FROM stdin;\nends with \\\n\\.\n", 2, "backslash at end of line");
    check("COPY t (a) FROM stdin;\nx\\N\n\\.\n", 2, "\\N is only valid");
    check("COPY t (a) FROM stdin;\nabc\\.\n", 2, "must be alone");
    check("COPY t (a) FROM stdin;\n1\n2\n", 3, "missing");
    check("COPY t (a) FROM stdin;", 1, "missing");
    check("COPY t (a) FROM stdin; SELECT 1;\n", 1, "unexpected text after");
    check("\n\nINSERT INTO nosuch VALUES (1);\n", 3, "no column list");
    check("COPY nosuch FROM stdin;\n\\.\n", 1, "no column list");
    check("INSERT INTO t (a, b) VALUES\n(1, 2),\n(3);\n", 3, "1 values for 2 columns");
    check("INSERT INTO t (a) VALUES\n(now());\n", 2, "unsupported expression `now`");
    check("INSERT INTO t (a) VALUES (U&'d\\0061t');\n", 1, "U&");
    check("INSERT INTO t (a) SELECT 1;\n", 1, "INSERT ... SELECT");
    check("INSERT INTO t (a) VALUES (E'\\u12');\n", 1, "invalid Unicode escape");
    check("INSERT INTO t (a) VALUES (E'\\xff');\n", 1, "invalid UTF-8");
    check("INSERT INTO t (a) VALUES (B'012');\n", 1, "binary digit");
    check("INSERT INTO t (a) VALUES (1) RETURNING a;\n", 1, "unexpected `returning`");
    check("COPY t (a) FROM '/etc/passwd';\n", 1, "FROM stdin");
    check("COPY t (a) FROM stdin WITH (FORMAT csv);\n", 1, "options are not supported");
    check("SET client_encoding = 'LATIN1';\n", 1, "only UTF8");
    let deep = format!("SELECT 1;\nINSERT INTO t (a) VALUES ({}1{});\n", "(".repeat(100), ")".repeat(100));
    check(&deep, 2, "nested too deeply");
    let deep = format!("INSERT INTO t (a) VALUES ({}{});\n", "ARRAY[".repeat(100), "]".repeat(100));
    check(&deep, 1, "nested too deeply");
    let e = read_all("SELECT 1;\nSELECT '\u{e9}\n").unwrap_err();
    assert_eq!(e.line, 2);
    let mut bad = b"COPY t (a) FROM stdin;\n".to_vec();
    bad.extend_from_slice(b"ok\n\xff\xfe\n\\.\n");
    let e = DumpReader::new(&bad[..]).collect::<Result<Vec<_>, _>>().unwrap_err();
    assert_eq!((e.line, e.message.contains("invalid UTF-8")), (3, true), "{e}");
    let e = DumpReader::new(&b"SELECT 1;\n\xc3(\n"[..]).collect::<Result<Vec<_>, _>>().unwrap_err();
    assert_eq!((e.line, e.message.contains("invalid UTF-8")), (2, true), "{e}");
}

#[test]
fn rows_before_an_error_are_delivered_and_nothing_after_it() {
    let dump = "COPY t (a) FROM stdin;\n1\n2\nbad \\q\n3\n\\.\n";
    let mut reader = DumpReader::new(dump.as_bytes());
    assert_eq!(reader.next().unwrap().unwrap().values, vec![Some("1".to_owned())]);
    assert_eq!(reader.next().unwrap().unwrap().values, vec![Some("2".to_owned())]);
    assert_eq!(reader.next().unwrap().unwrap_err().line, 4);
    assert!(reader.next().is_none());
    assert!(reader.next().is_none());
}

#[test]
fn truncated_fixtures_error_instead_of_losing_rows() {
    // Cut inside a COPY block (between rows, then mid-row), inside an INSERT string, and
    // inside an INSERT statement.
    let mid_row = COPY_DUMP.find("Pong").unwrap();
    let row_start = COPY_DUMP[..mid_row].rfind('\n').unwrap() + 1;
    let e = error(&COPY_DUMP[..row_start]);
    assert_eq!(e.line, 576);
    assert!(e.message.contains("missing") && e.message.contains("COPY at line 565"), "{e}");
    assert!(error(&COPY_DUMP[..mid_row]).message.contains("4 fields, expected 5"));
    let cut = &INSERTS_DUMP[..INSERTS_DUMP.find("line2").unwrap()];
    assert!(error(cut).message.contains("unterminated quoted string"));
    let at = INSERTS_DUMP.find("'Pong").unwrap();
    assert!(error(&INSERTS_DUMP[..at]).message.contains("not terminated"));
}

// ---- writers -------------------------------------------------------------------------

#[test]
fn writers_escape_as_expected() {
    assert_eq!(copy_field(None), "\\N");
    assert_eq!(copy_field(Some("")), "");
    assert_eq!(copy_field(Some("\\N")), "\\\\N");
    assert_eq!(copy_field(Some("\\.")), "\\\\.");
    assert_eq!(copy_field(Some("a\tb\nc\rd\u{1}e\u{7f}")), "a\\tb\\nc\\rd\\x01e\\x7f");
    assert_eq!(copy_field(Some("日本 'q' \"d\"")), "日本 'q' \"d\"");
    assert_eq!(sql_literal(None), "NULL");
    assert_eq!(sql_literal(Some("it's")), "'it''s'");
    assert_eq!(sql_literal(Some("")), "''");
    assert_eq!(sql_literal(Some("a\\b 'c'\n")), "E'a\\\\b ''c''\\n'");
    assert_eq!(sql_literal(Some("\u{1}7")), "E'\\x017'");
    for (name, quoted) in [
        ("tenants", "tenants"),
        ("_x1", "_x1"),
        ("key", "key"),
        ("value", "value"),
        ("user", "\"user\""),
        ("order", "\"order\""),
        ("timestamp", "\"timestamp\""),
        ("Order", "\"Order\""),
        ("a b", "\"a b\""),
        ("1abc", "\"1abc\""),
        ("a\"b", "\"a\"\"b\""),
        ("déjà", "\"déjà\""),
        ("", "\"\""),
    ] {
        assert_eq!(quote_ident(name), quoted);
    }
    assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]), "KEYWORDS must stay sorted");
}

#[test]
fn write_copy_output_reads_back() {
    let mut out = Vec::new();
    let rows = vec![vec![Some("1".to_owned()), None], vec![Some("\\.".to_owned()), Some(String::new())]];
    assert_eq!(write_copy(&mut out, "user", &["id", "Mixed Case"], rows.clone()).unwrap(), 2);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text, "COPY public.\"user\" (id, \"Mixed Case\") FROM stdin;\n1\t\\N\n\\\\.\t\n\\.\n");
    let back = super::tests::rows(&text);
    assert_eq!(back.iter().map(|r| r.values.clone()).collect::<Vec<_>>(), rows);
    assert_eq!(back[0].table, "user");
    let err = write_copy(&mut Vec::new(), "t", &["a"], vec![vec![None, None]]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

// ---- properties ----------------------------------------------------------------------

fn tricky_string() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '\\', '\t', '\n', '\r', '.', 'N', '\'', '"', '$', ';', '\0', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{1f}',
        '\u{7f}', 'é', '日', '🚀', ' ', '{', '}', ',', 'x', '0', '7', 'E',
    ]);
    prop::collection::vec(prop_oneof![2 => any::<char>(), 3 => special], 0..24)
        .prop_map(|chars| chars.into_iter().collect())
}

fn tricky_value() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(0.85, tricky_string())
}

const FRAGMENTS: &[&str] = &[
    "COPY t (a, b) FROM stdin;",
    "COPY t FROM stdin;",
    "\\.",
    "a\tb",
    "\\N\t\\\\",
    "\\x4",
    "\\",
    "INSERT INTO t VALUES (1, 'x');",
    "INSERT INTO t (a, b) VALUES",
    "(1, 2),",
    "(ARRAY[[1], [",
    "CREATE TABLE t (a int, b text);",
    "CREATE FUNCTION f() BEGIN ATOMIC",
    "END;",
    "'",
    "E'\\",
    "$$",
    "$a$",
    "/*",
    "*/",
    "--",
    "\"",
    ";",
    "::",
    "::text[]",
    "(",
    ")",
    "\\restrict x",
    "U&'x'",
    "B'01'",
    "X'zz'",
    "-",
    "SET standard_conforming_strings = off;",
    "DEFAULT",
    "",
];

proptest! {
    #[test]
    fn copy_field_and_the_copy_parser_are_inverse(value in tricky_value()) {
        let field = copy_field(value.as_deref());
        prop_assert!(!field.contains(['\t', '\n', '\r']));
        prop_assert_eq!(decode_copy_field(field.as_bytes()).unwrap(), value);
    }

    #[test]
    fn write_copy_round_trips(rows in prop::collection::vec(prop::collection::vec(tricky_value(), 3), 0..8)) {
        let mut out = Vec::new();
        let written = write_copy(&mut out, "Order", &["a", "user", "Mixed Case"], rows.clone()).unwrap();
        prop_assert_eq!(written, rows.len());
        let back = read_all(std::str::from_utf8(&out).unwrap()).unwrap();
        prop_assert_eq!(back.len(), rows.len());
        let columns = ["a", "user", "Mixed Case"].map(String::from);
        for (row, expected) in back.iter().zip(&rows) {
            prop_assert_eq!(&row.table, "Order");
            prop_assert_eq!(row.columns.as_slice(), columns.as_slice());
            prop_assert_eq!(&row.values, expected);
        }
    }

    #[test]
    fn sql_literal_round_trips(a in tricky_value(), b in tricky_value(), standard in any::<bool>()) {
        let dump = format!(
            "SET standard_conforming_strings = {};\nINSERT INTO t (a, b) VALUES ({}, {}), ({}, NULL);\n",
            if standard { "on" } else { "off" },
            sql_literal(a.as_deref()),
            sql_literal(b.as_deref()),
            sql_literal(b.as_deref()),
        );
        let rows = read_all(&dump).unwrap();
        prop_assert_eq!(rows.len(), 2);
        prop_assert_eq!(&rows[0].values, &vec![a, b.clone()]);
        prop_assert_eq!(&rows[1].values, &vec![b, None]);
    }

    #[test]
    fn quote_ident_round_trips(name in tricky_string().prop_filter("non-empty", |s| !s.is_empty())) {
        let q = quote_ident(&name);
        let dump = format!("CREATE TABLE public.{q} ({q} int);\nINSERT INTO public.{q} VALUES (1);\n");
        let rows = read_all(&dump).unwrap();
        prop_assert_eq!(&rows[0].table, &name);
        prop_assert_eq!(rows[0].columns.as_slice(), std::slice::from_ref(&name));
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        drain(&bytes);
    }

    #[test]
    fn random_fragments_never_panic(
        parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40),
        glue in prop::sample::select(vec!["\n", " ", "\t", "\r\n", ""]),
    ) {
        drain(parts.join(glue).as_bytes());
    }

    #[test]
    fn corrupted_fixtures_never_panic(
        which in 0..3usize,
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let dump = [COPY_DUMP, INSERTS_DUMP, COLUMN_INSERTS_DUMP][which].as_bytes();
        let mut bytes = dump[..cut.index(dump.len() + 1)].to_vec();
        for (at, byte) in flips {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
        }
        drain(&bytes);
    }
}

// ---- streaming and throughput --------------------------------------------------------

const CHAT: &str = "C:\\Users\\alice 東京の観光地 🍣 — a longer sentence to look like chat text";

/// A dump of `rows` generated on the fly, so the reader is fed without the dump in memory.
struct Synthetic {
    rows: usize,
    next: usize,
    inserts: bool,
    chunk: Vec<u8>,
    at: usize,
    done: bool,
}

impl Synthetic {
    fn new(rows: usize, inserts: bool) -> Self {
        let header = if inserts {
            "CREATE TABLE public.messages (\n id text, conversation_id text, role text, content text, \"timestamp\" bigint\n);\n"
        } else {
            "COPY public.messages (id, conversation_id, role, content, \"timestamp\") FROM stdin;\n"
        };
        Self { rows, next: 0, inserts, chunk: header.as_bytes().to_vec(), at: 0, done: false }
    }

    fn refill(&mut self) {
        self.chunk.clear();
        self.at = 0;
        let end = (self.next + 1000).min(self.rows);
        for n in self.next..end {
            let (id, time) = (format!("{n:08x}-d00c-472b-b475-6aba175ecd39"), 1_769_040_000 + n);
            let line = if self.inserts {
                let content = format!("Sure!\n\tDay {n}: ''Asakusa'' & \"Harajuku\" {CHAT}");
                format!(
                    "INSERT INTO public.messages VALUES ('{id}', 'ctx_a1b2c3d4', 'assistant', '{content}', {time});\n"
                )
            } else {
                let content = format!("Sure!\\n\\tDay {n}: 'Asakusa' & \"Harajuku\" {}", CHAT.replace('\\', "\\\\"));
                format!("{id}\tctx_a1b2c3d4\tassistant\t{content}\t{time}\n")
            };
            self.chunk.extend_from_slice(line.as_bytes());
        }
        self.next = end;
        if end == self.rows && !self.done {
            self.done = true;
            if !self.inserts {
                self.chunk.extend_from_slice(b"\\.\n");
            }
        }
    }
}

impl Read for Synthetic {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            self.refill();
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn stream(rows: usize, inserts: bool) -> (usize, u64, f64) {
    let start = Instant::now();
    let mut reader = DumpReader::new(BufReader::with_capacity(1 << 16, Synthetic::new(rows, inserts)));
    let mut count = 0;
    for row in reader.by_ref() {
        let row = row.unwrap();
        assert_eq!(row.values.len(), 5);
        count += 1;
    }
    (count, reader.bytes_read(), start.elapsed().as_secs_f64())
}

#[test]
fn streams_a_generated_dump() {
    for inserts in [false, true] {
        let (count, bytes, _) = stream(5_000, inserts);
        assert_eq!(count, 5_000);
        assert!(bytes > 5_000 * 150);
    }
    let mut reader = DumpReader::new(BufReader::new(Synthetic::new(3, false)));
    let first = reader.next().unwrap().unwrap();
    assert_eq!(first.get("content"), Some(format!("Sure!\n\tDay 0: 'Asakusa' & \"Harajuku\" {CHAT}").as_str()));
    assert_eq!(first.line, 2);
}
