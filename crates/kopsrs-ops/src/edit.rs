//! `--set` / `--unset`: field assignments by path, checked against the object's schema.

use anyhow::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::problems::Problems;

/// Applies `--set path=value` assignments and `--unset path`s to `object`, each path
/// checked against `T`'s schema (`prefix`, e.g. `instancegroup.`, may lead a path); every
/// bad one is a problem, all reported together.
pub fn apply_assignments<T: Serialize + DeserializeOwned + schemars::JsonSchema>(
    object: &T,
    sets: &[String],
    unsets: &[String],
    prefix: &str,
) -> Result<T> {
    let schema = serde_json::to_value(schemars::schema_for!(T))?;
    let mut value = serde_json::to_value(object)?;
    let mut problems = Vec::new();
    for assignment in sets {
        let result = assignment
            .split_once('=')
            .ok_or_else(|| "expected path=value".to_string())
            .and_then(|(path, raw)| {
                kopsrs_api::paths::set(
                    &mut value,
                    &schema,
                    path.strip_prefix(prefix).unwrap_or(path),
                    raw,
                )
            });
        if let Err(e) = result {
            problems.push(format!("--set {assignment}: {e}"));
        }
    }
    for path in unsets {
        if let Err(e) =
            kopsrs_api::paths::unset(&mut value, path.strip_prefix(prefix).unwrap_or(path))
        {
            problems.push(format!("--unset {path}: {e}"));
        }
    }
    if !problems.is_empty() {
        return Err(Problems::from_messages(problems).into());
    }
    serde_json::from_value(value).map_err(|e| {
        Problems::one(
            format!("the edited object is not valid: {e}"),
            "check the --set values",
        )
        .into()
    })
}
