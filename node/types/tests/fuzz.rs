//! Property-based fuzzing of the job spec parsers: whatever the document,
//! `JobSpec::from_yaml` and `JobSpec::from_canonical_json` never panic; an
//! error names the field or the parse problem; an accepted spec re-validates
//! and round-trips through its canonical JSON.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::Value;
use shoal_types::{Error, JobSpec};

/// The example spec of `src/spec.rs`, in block style so that every scalar has
/// its own line to mutate.
const EXAMPLE: &str = "name: wordcount
engine:
  wasm:
    module: ipfs://bafkreiexample
    entrypoint: _start
    args:
      - /inputs/books
    env:
      LANG: C
inputs:
  - source: ipfs://bafybeiexample
    path: /inputs/books
  - source: https://example.org/data.csv
    path: /inputs/data.csv
    checksum: sha256:0000000000000000000000000000000000000000000000000000000000000000
outputs:
  - name: counts
    path: /outputs/counts
resources:
  cpu: 1
  memory: 64MiB
  timeout: 30s
network: false
deal:
  concurrency: 3
  confidence: 2
  min_bids: 3
  max_price: \"1000\"
  collateral: 500
  verifier: deterministic
  mediation: true
  windows:
    bid: 10s
    exec: 1m
    reveal: 30s
constraints:
  - region=eu
  - gpu in (a100,h100)
";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Internal names a user must never see in an error.
const JARGON: &[&str] = &["untagged enum", "Raw", "variant of"];

/// An error must say what is wrong: a named field with a reason, or a
/// non-empty description of the parse problem without internal type names.
fn assert_clear(err: &Error, doc: &[u8]) {
    let msg = err.to_string();
    let shown = String::from_utf8_lossy(doc);
    assert!(!msg.trim().is_empty(), "empty error for {shown:?}");
    match err {
        Error::Invalid { field, reason } => {
            assert!(
                !field.trim().is_empty(),
                "no field in `{msg}` for {shown:?}"
            );
            assert!(
                !reason.trim().is_empty(),
                "no reason in `{msg}` for {shown:?}"
            );
        }
        Error::Pipeline(problem) => {
            assert!(
                !problem.trim().is_empty(),
                "no pipeline problem in `{msg}` for {shown:?}"
            );
        }
        Error::Parse(problem) => {
            assert!(
                !problem.trim().is_empty(),
                "no parse problem in `{msg}` for {shown:?}"
            );
            // Jargon the document itself holds (a field named `_Raw`) is only quoted back.
            for j in JARGON.iter().filter(|j| !shown.contains(**j)) {
                assert!(
                    !problem.contains(j),
                    "unclear error `{msg}` (mentions `{j}`) for {shown:?}"
                );
            }
        }
    }
}

/// An accepted spec is valid and its canonical JSON is a fixed point.
fn assert_round_trips(spec: &JobSpec) {
    spec.validate().expect("an accepted spec re-validates");
    let json = spec.to_canonical_json();
    let back = JobSpec::from_canonical_json(&json).unwrap_or_else(|e| {
        panic!(
            "canonical JSON of an accepted spec is refused: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(&back, spec, "canonical JSON round trip changed the spec");
    assert_eq!(
        back.to_canonical_json(),
        json,
        "canonical form is not stable"
    );
}

fn check_yaml(doc: &str) {
    match JobSpec::from_yaml(doc) {
        Ok(spec) => assert_round_trips(&spec),
        Err(e) => assert_clear(&e, doc.as_bytes()),
    }
}

fn check_json(doc: &[u8]) {
    match JobSpec::from_canonical_json(doc) {
        Ok(spec) => assert_round_trips(&spec),
        Err(e) => assert_clear(&e, doc),
    }
}

/// Scalars that stress YAML and the spec's own value parsers.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "~",
            "null",
            "true",
            "no",
            "0",
            "-1",
            "1.5",
            "-0.0",
            "1e400",
            "-1e400",
            ".nan",
            ".inf",
            "-.inf",
            "0x10",
            "0o17",
            "1_000",
            "18446744073709551615",
            "18446744073709551616",
            "340282366920938463463374607431768211455",
            "340282366920938463463374607431768211456",
            "99999999999999999999999999999999999999999",
            "\"1000\"",
            "\" 7 \"",
            "\"-5\"",
            "\"0x10\"",
            "'quoted'",
            "[]",
            "{}",
            "[1, 2]",
            "{a: 1}",
            "&a x",
            "*a",
            "!!binary aGVsbG8=",
            "!!str 5",
            "!custom x",
            "|\n  text",
            ">-",
            "- x",
            "? x",
            "%YAML 1.2",
            "---",
            "...",
            "#comment",
            "0s",
            "1ns",
            "1s 500ms",
            "600000000000y",
            "18446744073709551615s",
            "1000000000000000d",
            "5m",
            "1h",
            "10000000h",
            "0B",
            "1KiB",
            "64MiB",
            "1EiB",
            "16EiB",
            "17EiB",
            "999999999999TiB",
            "1.5GB",
            "-1MiB",
            "ipfs://",
            "ipfs://x",
            "file://rel",
            "file:///abs",
            "inline:",
            "inline;base64,",
            "inline;base64,@@@",
            "inline;base64,aGk=",
            "http://",
            "ftp://x",
            "/",
            "/a//b",
            "/a/../b",
            "/inputs/books/x",
            "stdout",
            "exitCode",
            "optimistic",
            "deterministic",
            "Deterministic",
            "wasm",
            "docker",
            "a=b",
            "a!=b",
            "a in ()",
            "a in (b,)",
            "a notin (b)",
            "k=v=w",
            "é=ü",
            "\u{0}",
            "\"\\u0000\"",
            "\u{202e}rtl",
            "🦀",
            "\u{feff}bom",
            "\t",
            "\"\\t\"",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "[0-9]{19,80}",
        "[0-9]{1,12}(ns|us|ms|s|m|h|d|w|M|y| ){1,3}",
        "[0-9]{1,20}(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB|PB|EB|EiB)",
        // Arbitrary unicode, quoted as a YAML/JSON string or raw.
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        "\\PC{0,24}",
        "[-a-z0-9_:/.,#&*!|>%@\\[\\]{}\"' ]{0,32}",
    ]
}

/// A key: one the spec knows, or a random one.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "name",
            "engine",
            "wasm",
            "docker",
            "module",
            "image",
            "entrypoint",
            "args",
            "env",
            "cmd",
            "working_dir",
            "inputs",
            "outputs",
            "source",
            "path",
            "checksum",
            "resources",
            "cpu",
            "memory",
            "timeout",
            "network",
            "deal",
            "concurrency",
            "confidence",
            "min_bids",
            "max_price",
            "collateral",
            "verifier",
            "mediation",
            "windows",
            "bid",
            "exec",
            "reveal",
            "constraints",
            "<<",
            "? ",
            "\"\"",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z_]{1,12}",
        "\\PC{1,8}",
    ]
}

/// Deeply nested flow or block YAML.
fn nested() -> impl Strategy<Value = String> {
    (1usize..2000, 0u8..4).prop_map(|(depth, kind)| match kind {
        0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth)),
        2 => {
            let depth = depth.min(300);
            let mut s = String::from("\n");
            for i in 0..depth {
                s.push_str(&"  ".repeat(i + 3));
                s.push_str("a:\n");
            }
            s
        }
        _ => format!("&x {}*x{}", "[".repeat(depth), "]".repeat(depth)),
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value after the line's key.
    Value(usize, String),
    /// Replace the line's key, keeping its value.
    Key(usize, String),
    Delete(usize),
    Duplicate(usize),
    /// Insert `key: value` with the indentation of the line.
    Insert(usize, String, String),
    /// Replace the line's value with deeply nested YAML.
    Nest(usize, String),
    /// Replace one character of the document.
    Char(usize, char),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let line = any::<usize>();
    prop_oneof![
        4 => (line, token()).prop_map(|(l, t)| Mutation::Value(l, t)),
        1 => (line, key()).prop_map(|(l, k)| Mutation::Key(l, k)),
        2 => line.prop_map(Mutation::Delete),
        2 => line.prop_map(Mutation::Duplicate),
        2 => (line, key(), token()).prop_map(|(l, k, t)| Mutation::Insert(l, k, t)),
        1 => (line, nested()).prop_map(|(l, n)| Mutation::Nest(l, n)),
        1 => (line, any::<char>()).prop_map(|(l, c)| Mutation::Char(l, c)),
    ]
}

/// Splits `  - key: value` into (`  - `, `key`, `value`).
fn split_line(line: &str) -> (String, String, String) {
    let body = line.trim_start();
    let mut prefix = line[..line.len() - body.len()].to_owned();
    let body = match body.strip_prefix("- ") {
        Some(rest) => {
            prefix.push_str("- ");
            rest
        }
        None => body,
    };
    match body.split_once(':') {
        Some((k, v)) => (prefix, k.to_owned(), v.trim_start().to_owned()),
        None => (prefix, String::new(), body.to_owned()),
    }
}

fn join(prefix: &str, key: &str, value: &str) -> String {
    if key.is_empty() {
        format!("{prefix}{value}")
    } else {
        format!("{prefix}{key}: {value}")
    }
}

fn apply(doc: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = doc.lines().map(str::to_owned).collect();
    for m in mutations {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match m {
            Mutation::Value(l, t) => {
                let (p, k, _) = split_line(&lines[l % n]);
                lines[l % n] = join(&p, &k, t);
            }
            Mutation::Key(l, new) => {
                let (p, _, v) = split_line(&lines[l % n]);
                lines[l % n] = join(&p, new, &v);
            }
            Mutation::Delete(l) => {
                lines.remove(l % n);
            }
            Mutation::Duplicate(l) => {
                let copy = lines[l % n].clone();
                lines.insert(l % n, copy);
            }
            Mutation::Insert(l, k, t) => {
                let line = &lines[l % n];
                let indent = &line[..line.len() - line.trim_start().len()];
                let new = format!("{indent}{k}: {t}");
                lines.insert(l % n, new);
            }
            Mutation::Nest(l, nest) => {
                let (p, k, _) = split_line(&lines[l % n]);
                lines[l % n] = join(&p, &k, nest);
            }
            Mutation::Char(l, c) => {
                let line = &mut lines[l % n];
                let chars: Vec<char> = line.chars().collect();
                if chars.is_empty() {
                    line.push(*c);
                } else {
                    let i = l % chars.len();
                    *line = chars[..i]
                        .iter()
                        .chain(std::iter::once(c))
                        .chain(&chars[i + 1..])
                        .collect();
                }
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Every node of a JSON tree, as paths of keys/indices, in pre-order.
fn paths(v: &Value, at: Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let mut p = at.clone();
                p.push(PathStep::Key(k.clone()));
                paths(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let mut p = at.clone();
                p.push(PathStep::Index(i));
                paths(c, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn node_mut<'a>(v: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, step| match step {
        PathStep::Key(k) => v.get_mut(k.as_str()),
        PathStep::Index(i) => v.get_mut(*i),
    })
}

/// A random JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        token().prop_map(Value::String),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum JsonMutation {
    Replace(usize, Value),
    Remove(usize),
    AddKey(usize, String, Value),
}

fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    prop_oneof![
        3 => (any::<usize>(), json_value()).prop_map(|(i, v)| JsonMutation::Replace(i, v)),
        2 => any::<usize>().prop_map(JsonMutation::Remove),
        2 => (any::<usize>(), key(), json_value()).prop_map(|(i, k, v)| JsonMutation::AddKey(i, k, v)),
    ]
}

fn apply_json(mut v: Value, mutations: &[JsonMutation]) -> Value {
    for m in mutations {
        let mut all = Vec::new();
        paths(&v, Vec::new(), &mut all);
        let pick = |i: usize| all[i % all.len()].clone();
        match m {
            JsonMutation::Replace(i, new) => {
                if let Some(n) = node_mut(&mut v, &pick(*i)) {
                    *n = new.clone();
                }
            }
            JsonMutation::Remove(i) => {
                let path = pick(*i);
                if let Some((last, parent)) = path.split_last()
                    && let Some(p) = node_mut(&mut v, parent)
                {
                    match (p, last) {
                        (Value::Object(m), PathStep::Key(k)) => {
                            m.remove(k);
                        }
                        (Value::Array(a), PathStep::Index(i)) if *i < a.len() => {
                            a.remove(*i);
                        }
                        _ => {}
                    }
                }
            }
            JsonMutation::AddKey(i, k, new) => {
                if let Some(Value::Object(m)) = node_mut(&mut v, &pick(*i)) {
                    m.insert(k.clone(), new.clone());
                }
            }
        }
    }
    v
}

fn canonical_example() -> Vec<u8> {
    JobSpec::from_yaml(EXAMPLE)
        .expect("the example parses")
        .to_canonical_json()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(doc in prop_oneof![
        any::<String>(),
        "[-a-z0-9_:/.,#&*!|>%@\\[\\]{}\"' \n\t]{0,200}",
        prop::collection::vec((key(), token()), 0..8).prop_map(|kv| {
            kv.into_iter().map(|(k, v)| format!("{k}: {v}\n")).collect::<String>()
        }),
    ]) {
        check_yaml(&doc);
        check_json(doc.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_json(&bytes);
        check_yaml(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_yaml_specs_never_panic(mutations in prop::collection::vec(mutation(), 1..5)) {
        let doc = apply(EXAMPLE, &mutations);
        check_yaml(&doc);
    }

    #[test]
    fn mutated_json_specs_never_panic(mutations in prop::collection::vec(json_mutation(), 1..4)) {
        let example: Value = serde_json::from_slice(&canonical_example()).expect("JSON");
        let mutated = apply_json(example, &mutations);
        let bytes = serde_json::to_vec(&mutated).expect("serializes");
        check_json(&bytes);
        // JSON is YAML too.
        check_yaml(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn flipped_canonical_json_never_panics(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)
    ) {
        let mut bytes = canonical_example();
        for (at, b, op) in edits {
            let i = at % (bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = b,
                1 => bytes.insert(i, b),
                _ => bytes.truncate(i.max(1)),
            }
        }
        check_json(&bytes);
    }
}

// ---- regressions found by the properties above ----

#[test]
fn the_block_style_example_is_accepted() {
    check_yaml(EXAMPLE);
    check_json(&canonical_example());
}
/// Found by `mutated_yaml_specs_never_panic`: `memory: 0.0` or `max_price: -1` was refused
/// with "data did not match any variant of untagged enum Raw", naming neither the field
/// nor the value, and every type error lost its field and line.
#[test]
fn a_bad_size_or_amount_names_the_field_and_the_value() {
    for (from, to, field, value) in [
        ("memory: 64MiB", "memory: 0.0", "resources.memory", "`0.0`"),
        ("memory: 64MiB", "memory: -1", "resources.memory", "`-1`"),
        (
            "max_price: \"1000\"",
            "max_price: -1",
            "deal.max_price",
            "`-1`",
        ),
        (
            "collateral: 500",
            "collateral: 1.5",
            "deal.collateral",
            "`1.5`",
        ),
        (
            "collateral: 500",
            "collateral: [1]",
            "deal.collateral",
            "sequence",
        ),
        (
            "concurrency: 3",
            "concurrency: abc",
            "deal.concurrency",
            "\"abc\"",
        ),
    ] {
        let doc = EXAMPLE.replace(from, to);
        let err = JobSpec::from_yaml(&doc).expect_err(to).to_string();
        assert!(err.contains(field), "{to}: {err}");
        assert!(err.contains(value), "{to}: {err}");
        assert!(err.contains("line "), "{to}: {err}");
        assert_clear(&JobSpec::from_yaml(&doc).expect_err(to), doc.as_bytes());
    }
}

/// Amounts beyond 64 bits written as numbers are refused naming the field (YAML's
/// value tree has no 128-bit integers); as decimal strings they are accepted.
#[test]
fn a_128_bit_amount_is_a_string() {
    let big = "340282366920938463463374607431768211455";
    let doc = EXAMPLE.replace("max_price: \"1000\"", &format!("max_price: {big}"));
    let err = JobSpec::from_yaml(&doc).expect_err("bare 128-bit number");
    assert!(err.to_string().contains("deal.max_price"), "{err}");
    let doc = EXAMPLE.replace("max_price: \"1000\"", &format!("max_price: \"{big}\""));
    let spec = JobSpec::from_yaml(&doc).expect("u128::MAX wei as a string");
    assert_eq!(spec.deal.max_price, u128::MAX);
    assert_round_trips(&spec);
}

/// Found by `mutated_json_specs_never_panic`: serde_json's default float parser read
/// `909.5863777680019` back as `909.586377768002`, so a spec's canonical JSON did not parse
/// back to the same spec (and would re-encode to other bytes, another spec hash).
#[test]
fn a_fractional_cpu_round_trips_bit_for_bit() {
    for cpu in [909.5863777680019, 0.1 + 0.2, 1.0 / 3.0, 1023.9999999999999] {
        let doc = EXAMPLE.replace("cpu: 1", &format!("cpu: {cpu:?}"));
        let spec = JobSpec::from_yaml(&doc).expect("parses");
        assert_eq!(spec.resources.cpu, cpu);
        assert_round_trips(&spec);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_valid_cpu_round_trips(cpu in 0.000_001f64..=1024.0) {
        let doc = EXAMPLE.replace("cpu: 1", &format!("cpu: {cpu:?}"));
        let spec = JobSpec::from_yaml(&doc).expect("parses");
        prop_assert_eq!(spec.resources.cpu, cpu);
        assert_round_trips(&spec);
    }
}
