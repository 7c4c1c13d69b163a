//! Turns the contracts' build artifacts into Solidity interfaces for `sol!`.
//!
//! A JSON ABI names enum types (`enum IJobMarket.JobState`) but not their variants, so `sol!`
//! alone would bind them as plain `uint8` wrappers. The variants are read from the contracts'
//! interface sources, the ABI from the artifacts, and the bytecode is written next to them so
//! the client deploys exactly what the artifacts hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy_json_abi::{JsonAbi, ToSolConfig};

/// (contract, its interface file, the interface that declares its enums).
const CONTRACTS: &[(&str, &str, &str)] = &[
    ("JobMarket", "IJobMarket.sol", "IJobMarket"),
    (
        "OperatorRegistry",
        "IOperatorRegistry.sol",
        "IOperatorRegistry",
    ),
    ("ShardMarket", "IShardMarket.sol", "IShardMarketTypes"),
    ("PipelineMarket", "IPipelineMarket.sol", "IPipelineMarket"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let contracts = manifest.join("../../contracts");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());

    let mut enums = BTreeMap::new();
    for (_, interface, contract) in CONTRACTS {
        let path = contracts.join("src/interfaces").join(interface);
        println!("cargo:rerun-if-changed={}", path.display());
        let source = read(&path);
        for (name, variants) in enum_definitions(&source) {
            enums.insert(format!("{contract}.{name}"), variants);
        }
    }

    for (name, _, _) in CONTRACTS {
        let path = contracts.join("artifacts").join(format!("{name}.json"));
        println!("cargo:rerun-if-changed={}", path.display());
        let artifact: serde_json::Value = serde_json::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let abi: JsonAbi = serde_json::from_value(artifact["abi"].clone())
            .unwrap_or_else(|e| panic!("{} has no valid ABI: {e}", path.display()));
        check_enums(&abi, &enums, &path);
        let config = ToSolConfig::new()
            .print_constructors(true)
            .for_sol_macro(true)
            .one_contract(true)
            .enum_definitions(enums.clone());
        let sol = abi.to_sol(name, Some(config));
        write(&out.join(format!("{name}.sol")), sol.as_bytes());

        let bytecode = artifact["bytecode"]["object"]
            .as_str()
            .unwrap_or_else(|| panic!("{} has no bytecode.object", path.display()));
        let hex = bytecode.trim_start_matches("0x");
        assert!(
            !hex.is_empty()
                && hex.len().is_multiple_of(2)
                && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{} has bytecode that is not hex",
            path.display()
        );
        let interface = format!("interface {name} ");
        assert!(
            sol.contains(&interface),
            "the Solidity generated for {name} has no `{interface}`"
        );
        let attributed = sol.replacen(
            &interface,
            &format!("#[sol(rpc, all_derives, bytecode = \"0x{hex}\")]\n{interface}"),
            1,
        );
        let rust = format!("alloy::sol! {{\n{attributed}\n}}\n");
        write(&out.join(format!("{name}.rs")), rust.as_bytes());
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Every enum the ABI uses must have its variants from the interface source.
fn check_enums(abi: &JsonAbi, enums: &BTreeMap<String, Vec<String>>, path: &Path) {
    let json = serde_json::to_string(abi).unwrap_or_default();
    for part in json.split("\"enum ").skip(1) {
        let name = part.split(['"', '[']).next().unwrap_or_default();
        assert!(
            enums.contains_key(name),
            "{} uses enum {name}, which no interface in contracts/src/interfaces declares",
            path.display()
        );
    }
}

/// `enum Name { A, B, C }` declarations of a Solidity source, comments removed.
fn enum_definitions(source: &str) -> Vec<(String, Vec<String>)> {
    let code = strip_comments(source);
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = find_keyword(rest, "enum") {
        rest = &rest[at + 4..];
        let Some(open) = rest.find('{') else { break };
        let Some(close) = rest.find('}') else { break };
        let name = rest[..open].trim().to_string();
        let variants = rest[open + 1..close]
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from);
        found.push((name, variants.collect()));
        rest = &rest[close + 1..];
    }
    found
}

fn find_keyword(s: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(word) {
        let at = from + i;
        let before = s[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_');
        let after = s[at + word.len()..]
            .chars()
            .next()
            .is_some_and(char::is_whitespace);
        if before && after {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

fn strip_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    loop {
        let line = rest.find("//");
        let block = rest.find("/*");
        match (line, block) {
            (Some(l), b) if b.is_none_or(|b| l < b) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |n| &rest[l + n..]);
            }
            (_, Some(b)) => {
                out.push_str(&rest[..b]);
                rest = rest[b..].find("*/").map_or("", |e| &rest[b + e + 2..]);
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}
