//! Which GGUF file of a repository a tag names: a file name, or a quantization such as `Q4_K_M`
//! matched as a whole word of the file name (`qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`).

use crate::error::{HubError, Result};
use crate::hub::RemoteFile;

/// The quantization pulled when none is named and the repository has several files: the usual
/// balance of size and quality.
const DEFAULT_QUANT: &str = "Q4_K_M";

/// The GGUF file of `files` that `tag` names (none: the only GGUF file, else the default
/// quantization). Split files (`-00001-of-00003.gguf`) are not candidates.
pub fn choose_gguf<'a>(
    repo: &str,
    files: &'a [RemoteFile],
    tag: Option<&str>,
) -> Result<&'a RemoteFile> {
    let ggufs: Vec<&RemoteFile> = files
        .iter()
        .filter(|file| file.path.to_ascii_lowercase().ends_with(".gguf") && !is_split(&file.path))
        .collect();
    let available = || ggufs.iter().map(|file| file.path.clone()).collect::<Vec<_>>();
    let no_match = |tag: &str| HubError::NoMatchingFile {
        repo: repo.to_owned(),
        tag: tag.to_owned(),
        available: available(),
    };
    let tag = match tag {
        Some(tag) => tag,
        None if ggufs.len() == 1 => return Ok(ggufs[0]),
        None => DEFAULT_QUANT,
    };
    if let Some(file) = ggufs.iter().find(|file| file.path == tag || file_name(&file.path) == tag) {
        return Ok(file);
    }
    let wanted = tag.to_ascii_lowercase();
    let matches: Vec<&RemoteFile> =
        ggufs.iter().copied().filter(|file| words(&file.path).any(|word| word == wanted)).collect();
    match matches.as_slice() {
        [] => Err(no_match(tag)),
        [only] => Ok(only),
        several => Err(HubError::AmbiguousTag {
            repo: repo.to_owned(),
            tag: tag.to_owned(),
            candidates: several.iter().map(|file| file.path.clone()).collect(),
        }),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The file name without `.gguf`, split at `-` and `.`, lower case; a quantization like
/// `q4_k_m` stays one word (its `_` are not separators).
fn words(path: &str) -> impl Iterator<Item = String> + '_ {
    let name = file_name(path);
    let stem = &name[..name.len() - ".gguf".len()];
    stem.split(['-', '.']).map(str::to_ascii_lowercase)
}

fn is_split(path: &str) -> bool {
    let stem = file_name(path).trim_end_matches(".gguf");
    stem.rsplit_once("-of-").is_some_and(|(head, total)| {
        total.chars().all(|c| c.is_ascii_digit())
            && head.rsplit('-').next().is_some_and(|part| part.chars().all(|c| c.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<RemoteFile> {
        names
            .iter()
            .map(|name| RemoteFile { path: (*name).into(), size: 1, sha256: None })
            .collect()
    }

    #[test]
    fn a_quant_tag_matches_one_word_of_the_name() {
        let repo = files(&[
            "README.md",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            "qwen2.5-coder-1.5b-instruct-q4_k_s.gguf",
            "qwen2.5-coder-1.5b-instruct-q8_0.gguf",
            "big-q8_0-00001-of-00002.gguf",
        ]);
        let chosen = |tag| choose_gguf("r", &repo, tag).map(|file| file.path.clone());
        assert_eq!(
            chosen(Some("Q4_K_M")).expect("q4_k_m"),
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
        );
        assert_eq!(
            chosen(Some("q8_0")).expect("q8_0, not the split file"),
            "qwen2.5-coder-1.5b-instruct-q8_0.gguf"
        );
        assert_eq!(chosen(None).expect("default"), "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
        assert_eq!(
            chosen(Some("qwen2.5-coder-1.5b-instruct-q4_k_s.gguf")).expect("a file name"),
            "qwen2.5-coder-1.5b-instruct-q4_k_s.gguf"
        );
        match choose_gguf("r", &repo, Some("Q4_K")) {
            Err(HubError::NoMatchingFile { available, .. }) => assert_eq!(available.len(), 3),
            other => panic!("Q4_K is not a whole word: {other:?}"),
        }
    }

    #[test]
    fn one_file_needs_no_tag_and_duplicates_are_ambiguous() {
        let single = files(&["model-f16.gguf"]);
        assert_eq!(choose_gguf("r", &single, None).expect("only one").path, "model-f16.gguf");
        let twins = files(&["a-q4_0.gguf", "b-q4_0.gguf"]);
        assert!(matches!(
            choose_gguf("r", &twins, Some("Q4_0")),
            Err(HubError::AmbiguousTag { .. })
        ));
        assert!(matches!(
            choose_gguf("r", &files(&["x.bin"]), None),
            Err(HubError::NoMatchingFile { .. })
        ));
    }
}
