//! Model names as users type them, validated so that no name can reach outside the store.
//!
//! Two forms: `NAME[:TAG]` (`qwen2.5-coder:1.5b-q4_k_m`; the tag defaults to `latest`) and
//! `hf.co/OWNER/REPO[:FILE_OR_QUANT]` (a Hugging Face repository; the part after `:` is a GGUF
//! file name or a quantization tag such as `Q4_K_M`). Every component is limited to letters,
//! digits and `._-`, never `.` or `..` alone, so a name maps to exactly one folder inside the
//! store, whatever the platform.

use std::fmt;

use crate::error::{Result, StoreError};

/// Longest name accepted (in bytes): far beyond real names, short of any path limit.
const MAX_NAME_BYTES: usize = 200;

/// Prefix of names that point at a Hugging Face repository.
pub const HUGGING_FACE_PREFIX: &str = "hf.co/";

/// A validated model name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName {
    /// `qwen2.5-coder`, or `hf.co/OWNER/REPO`.
    base: String,
    /// `latest`, `1.5b-q4_k_m`, a file name or a quantization tag.
    tag: String,
}

impl ModelName {
    /// Parses and validates `text`.
    pub fn parse(text: &str) -> Result<ModelName> {
        let invalid = |reason: &str| StoreError::InvalidName {
            name: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() || text.len() > MAX_NAME_BYTES {
            return Err(invalid("a name has 1 to 200 characters"));
        }
        let (base, tag) = match text.rsplit_once(':') {
            Some((base, tag)) => (base, tag),
            None => (text, "latest"),
        };
        let components: Vec<&str> = match base.strip_prefix(HUGGING_FACE_PREFIX) {
            Some(repository) => {
                let parts: Vec<&str> = repository.split('/').collect();
                if parts.len() != 2 {
                    return Err(invalid("a Hugging Face name is hf.co/OWNER/REPO[:FILE]"));
                }
                parts
            }
            None if base.contains('/') => {
                return Err(invalid("only hf.co/OWNER/REPO names may contain '/'"));
            }
            None => vec![base],
        };
        for component in components.iter().chain([&tag]) {
            check_component(component).map_err(|reason| invalid(&reason))?;
        }
        Ok(ModelName { base: base.to_owned(), tag: tag.to_owned() })
    }

    /// `qwen2.5-coder` or `hf.co/OWNER/REPO`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `OWNER/REPO` for a Hugging Face name.
    pub fn hugging_face_repository(&self) -> Option<&str> {
        self.base.strip_prefix(HUGGING_FACE_PREFIX)
    }

    /// The folder of this model inside the store's `models` folder: the name's components,
    /// joined so that distinct names never share a folder (`hf.co/a/b:c` → `hf.co/a/b/c`,
    /// `name:tag` → `name/tag`).
    pub fn relative_dir(&self) -> std::path::PathBuf {
        let mut dir = std::path::PathBuf::new();
        for component in self.base.split('/') {
            dir.push(component);
        }
        dir.push(&self.tag);
        dir
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.base, self.tag)
    }
}

fn check_component(component: &str) -> std::result::Result<(), String> {
    if component.is_empty() {
        return Err("empty part".to_owned());
    }
    if component == "." || component == ".." {
        return Err(format!("{component:?} is not a name"));
    }
    if let Some(bad) =
        component.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("{bad:?} is not allowed (letters, digits, '.', '_', '-')"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_a_default_tag() {
        let name = ModelName::parse("qwen2.5-coder:1.5b-q4_k_m").expect("valid");
        assert_eq!((name.base(), name.tag()), ("qwen2.5-coder", "1.5b-q4_k_m"));
        assert_eq!(ModelName::parse("gemma").expect("valid").to_string(), "gemma:latest");
        let hf =
            ModelName::parse("hf.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M").expect("hf");
        assert_eq!(hf.hugging_face_repository(), Some("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF"));
        assert_eq!(hf.tag(), "Q4_K_M");
        assert_eq!(
            hf.relative_dir(),
            std::path::Path::new("hf.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/Q4_K_M")
        );
    }

    #[test]
    fn names_that_could_leave_the_store_are_refused() {
        for bad in [
            "",
            "../etc",
            "a/../b",
            "..",
            ".",
            "/etc/passwd",
            "a:..",
            "a:.",
            "a/b",
            "hf.co/a",
            "hf.co/a/b/c",
            "hf.co/../b",
            "hf.co/a/..",
            "a\\b",
            "a:b/c",
            "C:\\x",
            "a b",
            "a\0b",
            "a:",
            ":b",
            "~root",
            "a%2e%2e",
        ] {
            assert!(ModelName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(ModelName::parse(&"a".repeat(201)).is_err());
    }

    proptest::proptest! {
        /// Whatever the input, an accepted name's folder has only normal components.
        #[test]
        fn accepted_names_stay_inside(text in "\\PC{0,40}") {
            if let Ok(name) = ModelName::parse(&text) {
                for component in name.relative_dir().components() {
                    proptest::prop_assert!(matches!(component, std::path::Component::Normal(_)));
                }
            }
        }
    }
}
