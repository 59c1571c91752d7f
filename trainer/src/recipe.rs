//! Recipes: a TOML file of `fit`/`cv` flags (`recipes/hand.toml`), read by `--recipe FILE`.
//! Its keys are the long flags without dashes (`hidden-dim` or `hidden_dim`); `true` turns
//! a switch on, arrays repeat a flag. A table named after a subcommand (`[cv]`) holds flags
//! for that subcommand alone. The recipe's flags go in front of those on the command line,
//! so any flag given there overrides the recipe.

use std::ffi::OsString;
use std::path::Path;

use anyhow::Context;

/// `argv` with the flags of the recipe named by `--recipe FILE` (or `--recipe=FILE`)
/// inserted right after the subcommand; `argv` unchanged when it names none.
pub fn expand(argv: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let Some(path) = recipe_path(&argv) else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the recipe {}", path.display()))?;
    let subcommand = argv.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    let flags =
        flags_of(&text, subcommand).with_context(|| format!("the recipe {}", path.display()))?;
    let mut out = argv;
    let at = 2.min(out.len());
    out.splice(at..at, flags.into_iter().map(OsString::from));
    Ok(out)
}

fn recipe_path(argv: &[OsString]) -> Option<std::path::PathBuf> {
    argv.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        if a == "--recipe" {
            argv.get(i + 1).map(|p| Path::new(p).to_path_buf())
        } else {
            a.strip_prefix("--recipe=")
                .map(|p| Path::new(p).to_path_buf())
        }
    })
}

/// The command-line flags a recipe's TOML stands for, for `subcommand`: the top-level keys,
/// then those of the table named after it.
pub fn flags_of(text: &str, subcommand: &str) -> anyhow::Result<Vec<String>> {
    let table: toml::Table = text.parse()?;
    let mut flags = table_flags(&table)?;
    if let Some(toml::Value::Table(own)) = table.get(subcommand) {
        flags.extend(table_flags(own)?);
    }
    Ok(flags)
}

fn table_flags(table: &toml::Table) -> anyhow::Result<Vec<String>> {
    let mut flags = Vec::new();
    for (key, value) in table {
        if value.is_table() {
            continue; // a subcommand's own flags
        }
        let flag = format!("--{}", key.replace('_', "-"));
        anyhow::ensure!(key != "recipe", "a recipe cannot name another recipe");
        let values = match value {
            toml::Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for v in values {
            match v {
                toml::Value::Boolean(true) => flags.push(flag.clone()),
                toml::Value::Boolean(false) => {}
                toml::Value::String(s) => flags.extend([flag.clone(), s]),
                toml::Value::Integer(n) => flags.extend([flag.clone(), n.to_string()]),
                toml::Value::Float(x) => flags.extend([flag.clone(), x.to_string()]),
                other => anyhow::bail!("`{key}`: {other} is not a flag value"),
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_becomes_flags_and_the_command_line_still_overrides_it() {
        let flags = flags_of(
            "head = \"lda\"\nhidden_dim = 128\nstandardize = true\nsoft-margin = false\nmargin = 0.3\nvariant = [\"a\", \"b:head=lda\"]\n[cv]\nval-fraction = 0.04\n",
            "fit",
        )
        .unwrap();
        assert_eq!(
            flags,
            [
                "--head",
                "lda",
                "--hidden-dim",
                "128",
                "--margin",
                "0.3",
                "--standardize",
                "--variant",
                "a",
                "--variant",
                "b:head=lda"
            ]
        );
        let cv = flags_of("head = \"lda\"\n[cv]\nval-fraction = 0.04\n", "cv").unwrap();
        assert_eq!(cv, ["--head", "lda", "--val-fraction", "0.04"]);
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("r.toml");
        std::fs::write(&recipe, "epochs = 10\n").unwrap();
        let argv: Vec<OsString> = ["handmatch-train", "fit", "--recipe"]
            .iter()
            .map(OsString::from)
            .chain([
                recipe.clone().into_os_string(),
                "--epochs".into(),
                "3".into(),
            ])
            .collect();
        let expanded = expand(argv).unwrap();
        let text: Vec<String> = expanded
            .iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        assert_eq!(&text[..4], ["handmatch-train", "fit", "--epochs", "10"]);
        assert_eq!(
            &text[text.len() - 2..],
            ["--epochs", "3"],
            "given flags come last and win"
        );
    }
}
