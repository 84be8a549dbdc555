//! The settings reference (`docs/settings.md`) lists every `[apikey]` setting the `Settings`
//! struct takes, with the environment variable that sets it, and nothing else: a setting added
//! without its line, or a line left after its setting went, fails here.

use std::collections::BTreeSet;

use apikey_core::Settings;
use serde::de::{self, Deserializer, Visitor};

/// A deserializer that only asks the struct it is given for the names of its fields (the
/// ones `serde(deny_unknown_fields)` accepts) and answers them in its error.
struct FieldNames;

impl<'de> Deserializer<'de> for FieldNames {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom(fields.join(",")))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn settings_fields() -> BTreeSet<String> {
    let err = match <Settings as serde::Deserialize>::deserialize(FieldNames) {
        Ok(_) => panic!("the settings were read from nothing"),
        Err(e) => e.to_string(),
    };
    err.split(',').map(str::to_owned).collect()
}

#[test]
fn settings_reference_matches_the_settings() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/settings.md");
    let doc = std::fs::read_to_string(path).expect("docs/settings.md");
    let table = doc
        .split("## Key sections")
        .next()
        .expect("the settings table comes first");
    let mut documented = BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 5, "five columns: {line}");
        let name = cells[0].trim_matches('`');
        assert_eq!(
            cells[3],
            format!("`APIKEY_{}`", name.to_ascii_uppercase()),
            "the environment variable of {name}"
        );
        for (column, cell) in ["type", "default", "meaning"]
            .iter()
            .zip([cells[1], cells[2], cells[4]])
        {
            assert!(!cell.is_empty(), "{name} has no {column}");
        }
        assert!(documented.insert(name.to_owned()), "{name} is listed twice");
    }
    let fields = settings_fields();
    assert!(fields.len() > 20, "{fields:?}");
    let missing: Vec<_> = fields.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&fields).collect();
    assert!(
        missing.is_empty(),
        "settings without a line in docs/settings.md: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "lines of docs/settings.md for no setting: {stale:?}"
    );
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor(title: &str) -> String {
    title
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The README's table of contents reaches every section and subsection, and nothing else:
/// a section added or renamed without its line fails here.
#[test]
fn readme_contents_reach_every_section() {
    let readme = include_str!("../../../README.md");
    let (_, after) = readme
        .split_once("## Contents\n")
        .expect("a table of contents");
    let listed: Vec<String> = after
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.trim_start().starts_with("- ["))
        .map(|l| {
            let (_, link) = l.split_once("](#").expect("a link");
            link.trim_end_matches(')').to_owned()
        })
        .collect();
    let mut in_code = false;
    let mut sections = Vec::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        if let Some(title) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### "))
        {
            if !matches!(title, "Contents" | "Two commands") {
                sections.push(anchor(title));
            }
        }
    }
    assert_eq!(listed, sections);
    for picture in ["docs/request-path.svg", "docs/instances.svg"] {
        assert!(readme.contains(picture), "the README shows {picture}");
        let path = format!("{}/../{picture}", env!("CARGO_MANIFEST_DIR"));
        let svg = std::fs::read_to_string(&path).expect(picture);
        assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
