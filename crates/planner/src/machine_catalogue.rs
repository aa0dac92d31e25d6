//! The machines `uma plan --hw` knows: the built-in catalogue (`data/machines.toml`), extended
//! or overridden by the user's own TOML files in the same format.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{PlannerError, Result};
use crate::machine::Machine;

/// The built-in catalogue, compiled in.
const BUILTIN: &str = include_str!("../data/machines.toml");

/// Environment variable naming uma's data folder.
pub const UMA_HOME_VARIABLE: &str = "UMA_HOME";

/// File name of the user's catalogue inside uma's data folder.
pub const USER_CATALOGUE_FILE: &str = "machines.toml";

/// A catalogue file: a list of `[[machine]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    machine: Vec<toml::Table>,
}

/// Machines by name, in catalogue order (user additions last).
#[derive(Clone, Debug, PartialEq)]
pub struct MachineCatalogue {
    /// Each machine's table as merged so far, and the machine it makes.
    entries: Vec<(toml::Table, Machine)>,
}

impl MachineCatalogue {
    /// The built-in catalogue.
    pub fn builtin() -> Result<MachineCatalogue> {
        let mut catalogue = MachineCatalogue { entries: Vec::new() };
        catalogue.extend_from_toml(BUILTIN, "catalogue")?;
        Ok(catalogue)
    }

    /// The built-in catalogue, then `$UMA_HOME/machines.toml` if it exists, then `user_file`.
    pub fn load(user_file: Option<&Path>) -> Result<MachineCatalogue> {
        let mut catalogue = MachineCatalogue::builtin()?;
        if let Some(home_file) = uma_home().map(|home| home.join(USER_CATALOGUE_FILE)) {
            if home_file.is_file() {
                catalogue.extend_from_file(&home_file)?;
            }
        }
        if let Some(path) = user_file {
            catalogue.extend_from_file(path)?;
        }
        Ok(catalogue)
    }

    /// Adds the machines of the TOML file at `path` (see [`MachineCatalogue::extend_from_toml`]).
    pub fn extend_from_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PlannerError::ReadFile { path: path.to_owned(), source })?;
        self.extend_from_toml(&text, &path.display().to_string())
    }

    /// Adds the `[[machine]]` entries of `text`: a new name is a new machine; a known name
    /// (case-insensitive) replaces only the fields the entry gives. `origin` names the source in
    /// errors and in each machine's `source`.
    pub fn extend_from_toml(&mut self, text: &str, origin: &str) -> Result<()> {
        let invalid =
            |reason: String| PlannerError::InvalidCatalogue { origin: origin.to_owned(), reason };
        let file: CatalogueFile = toml::from_str(text).map_err(|e| invalid(e.message().into()))?;
        for table in file.machine {
            let name = match table.get("name") {
                Some(toml::Value::String(name)) => name.clone(),
                _ => return Err(invalid("a [[machine]] has no name = \"...\"".into())),
            };
            let position = self.position(&name);
            let merged = match position {
                Some(index) => {
                    let mut merged = self.entries[index].0.clone();
                    // The known spelling of the name stays.
                    merged.extend(table.into_iter().filter(|(key, _)| key != "name"));
                    merged
                }
                None => table,
            };
            let mut machine: Machine =
                merged.clone().try_into().map_err(|e: toml::de::Error| {
                    invalid(format!("machine {name:?}: {}", e.message()))
                })?;
            machine.source = origin.to_owned();
            machine.validate()?;
            match position {
                Some(index) => self.entries[index] = (merged, machine),
                None => self.entries.push((merged, machine)),
            }
        }
        Ok(())
    }

    /// The machine called `name` (case-insensitive); the error lists every known name.
    pub fn get(&self, name: &str) -> Result<&Machine> {
        match self.position(name) {
            Some(index) => Ok(&self.entries[index].1),
            None => Err(PlannerError::UnknownMachine {
                name: name.to_owned(),
                known: self.names().join(", "),
            }),
        }
    }

    /// Every machine, in catalogue order.
    pub fn machines(&self) -> impl Iterator<Item = &Machine> {
        self.entries.iter().map(|(_, machine)| machine)
    }

    /// Every machine's name, in catalogue order.
    pub fn names(&self) -> Vec<&str> {
        self.machines().map(|machine| machine.name.as_str()).collect()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|(_, machine)| machine.name.eq_ignore_ascii_case(name.trim()))
    }
}

/// uma's data folder: `$UMA_HOME`, else the user data directory (`~/.local/share/uma` on Linux,
/// `~/Library/Application Support/uma` on macOS).
pub fn uma_home() -> Option<PathBuf> {
    match std::env::var_os(UMA_HOME_VARIABLE) {
        Some(home) if !home.is_empty() => Some(PathBuf::from(home)),
        _ => dirs::data_dir().map(|dir| dir.join("uma")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Name, memory (GiB) and bandwidth (GB/s) of every machine the catalogue must have.
    const REQUIRED: &[(&str, f64, f64)] = &[
        ("mac-studio-m4-max-36gb", 36.0, 410.0),
        ("mac-studio-m4-max-48gb", 48.0, 546.0),
        ("mac-studio-m4-max-64gb", 64.0, 546.0),
        ("mac-studio-m4-max-128gb", 128.0, 546.0),
        ("mac-studio-m3-ultra-96gb", 96.0, 819.0),
        ("mac-studio-m3-ultra-192gb", 192.0, 819.0),
        ("mac-studio-m3-ultra-256gb", 256.0, 819.0),
        ("mac-studio-m3-ultra-512gb", 512.0, 819.0),
        ("macbook-pro-m5-max-128gb", 128.0, 614.0),
        ("mac-mini-m4-16gb", 16.0, 120.0),
        ("mac-mini-m4-pro-24gb", 24.0, 273.0),
        ("rtx-4090", 24.0, 1008.0),
        ("rtx-5090", 32.0, 1792.0),
        ("dgx-spark", 128.0, 273.0),
        ("a100-80gb", 80.0, 2039.0),
        ("h100-sxm-80gb", 79.6, 3350.0),
    ];

    #[test]
    fn builtin_catalogue_has_every_listed_machine() {
        let catalogue = MachineCatalogue::builtin().expect("the built-in catalogue parses");
        for &(name, memory_gib, bandwidth) in REQUIRED {
            let machine = catalogue.get(name).expect(name);
            assert_eq!(machine.memory_gib, memory_gib, "{name}");
            assert_eq!(machine.bandwidth_gb_per_s, bandwidth, "{name}");
            assert_eq!(machine.source, "catalogue");
        }
        let names = catalogue.names();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "names are unique: {names:?}");
    }

    #[test]
    fn apple_working_sets_follow_the_documented_rule() {
        let catalogue = MachineCatalogue::builtin().expect("parses");
        let apple = catalogue.machines().filter(|m| m.name.starts_with("mac"));
        let mut count = 0;
        for machine in apple {
            let expected = crate::machine::apple_gpu_working_set_fraction(machine.memory_gib);
            let fraction = machine.gpu_working_set_fraction.expect("Apple machines have one");
            assert!((fraction - expected).abs() < 1e-3, "{}: {fraction}", machine.name);
            assert!(machine.unified_memory);
            count += 1;
        }
        assert!(count >= 13, "{count} Apple machines");
    }

    #[test]
    fn user_toml_overrides_fields_and_adds_machines() {
        let mut catalogue = MachineCatalogue::builtin().expect("parses");
        let before = catalogue.names().len();
        let user = r#"
            [[machine]]
            name = "RTX-4090"
            price_usd = 1200
            bandwidth_efficiency = 0.8

            [[machine]]
            name = "my-box"
            description = "a workstation"
            memory_gib = 256
            bandwidth_gb_per_s = 460.8
            bandwidth_efficiency = 0.7
            int8_tops = 20
            compute_efficiency = 0.5
            unified_memory = false
            os_reserve_gib = 4
        "#;
        catalogue.extend_from_toml(user, "mine.toml").expect("valid");
        assert_eq!(catalogue.names().len(), before + 1);
        let rtx = catalogue.get("rtx-4090").expect("still there");
        assert_eq!((rtx.price_usd, rtx.bandwidth_efficiency), (Some(1200.0), 0.8));
        assert_eq!(rtx.bandwidth_gb_per_s, 1008.0, "fields not given are kept");
        assert_eq!((rtx.name.as_str(), rtx.source.as_str()), ("rtx-4090", "mine.toml"));
        let mine = catalogue.get("my-box").expect("added");
        assert_eq!((mine.memory_gib, mine.int8_tops), (256.0, Some(20.0)));
        assert_eq!(catalogue.names().last(), Some(&"my-box"));
    }

    #[test]
    fn bad_catalogues_and_names_are_clear_errors() {
        let mut catalogue = MachineCatalogue::builtin().expect("parses");
        for (text, needle) in [
            ("[[machine]]\nname = \"x\"\n", "missing field"),
            ("[[machine]]\ndescription = \"no name\"\n", "no name"),
            ("[[machine]]\nname = \"rtx-4090\"\nmemory_gib = -1\n", "memory_gib"),
            ("[[machine]]\nname = \"rtx-4090\"\ncolour = \"red\"\n", "colour"),
            ("[[machines]]\nname = \"x\"\n", "machines"),
            ("not toml at all", "mine.toml"),
        ] {
            let error = catalogue.extend_from_toml(text, "mine.toml").expect_err(text).to_string();
            assert!(error.contains(needle), "{text:?}: {error}");
        }
        let error = catalogue.get("mac-studio-m9").expect_err("unknown").to_string();
        assert!(error.contains("\"mac-studio-m9\"") && error.contains("rtx-4090, rtx-5090"));
        let missing = catalogue.extend_from_file(Path::new("/no/such/machines.toml"));
        assert!(missing.expect_err("missing").to_string().contains("/no/such/machines.toml"));
    }
}
