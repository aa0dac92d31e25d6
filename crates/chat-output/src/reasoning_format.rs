//! How a model marks its reasoning ("thinking") apart from its answer.

/// A reasoning syntax, recognised from the chat template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReasoningFormat {
    /// `<think>…</think>` before the answer: Qwen3, QwQ, DeepSeek-R1 and its distills.
    ///
    /// Recognised by `<think>` or `</think>` anywhere in the template, e.g. DeepSeek-R1's
    /// `{%- if '</think>' in content -%}{%- set content = content.split('</think>')[-1] -%}` and
    /// generation prompt `{{'<｜Assistant｜><think>\n'}}`, or Qwen3's
    /// `{{- '<think>\n\n</think>\n\n' }}` for `enable_thinking=false`.
    Think,
}

impl ReasoningFormat {
    /// The reasoning syntax the template's source uses, if any.
    pub fn detect(template_source: &str) -> Option<ReasoningFormat> {
        (template_source.contains("<think>") || template_source.contains("</think>"))
            .then_some(ReasoningFormat::Think)
    }

    /// The tag that opens a reasoning block.
    pub fn open_tag(self) -> &'static str {
        match self {
            ReasoningFormat::Think => "<think>",
        }
    }

    /// The tag that closes a reasoning block.
    pub fn close_tag(self) -> &'static str {
        match self {
            ReasoningFormat::Think => "</think>",
        }
    }

    /// Whether the rendered prompt leaves the model inside an open reasoning block, so that its
    /// output starts with reasoning and has no opening tag: DeepSeek-R1 templates, and Qwen3 with
    /// `enable_thinking`, end the generation prompt with `<think>\n`. A prompt that also closes
    /// the block (Qwen3's `<think>\n\n</think>\n\n` with thinking disabled) does not.
    pub fn starts_in_reasoning(self, rendered_prompt: &str) -> bool {
        rendered_prompt.trim_end().ends_with(self.open_tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_think_templates() {
        let deepseek_r1 = "{%- if '</think>' in content -%}{%- set content = \
                           content.split('</think>')[-1] -%}{%- endif -%}\
                           {%- if add_generation_prompt -%}{{'<｜Assistant｜><think>\\n'}}{%- endif %}";
        assert_eq!(ReasoningFormat::detect(deepseek_r1), Some(ReasoningFormat::Think));
        let qwen3 = "{%- if enable_thinking is defined and enable_thinking is false %}\
                     {{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}";
        assert_eq!(ReasoningFormat::detect(qwen3), Some(ReasoningFormat::Think));
        let qwen2_5 = "{{- '<|im_start|>assistant\\n' }}";
        assert_eq!(ReasoningFormat::detect(qwen2_5), None);
    }

    #[test]
    fn open_think_at_the_end_of_the_prompt_starts_in_reasoning() {
        let format = ReasoningFormat::Think;
        assert!(format.starts_in_reasoning("<｜User｜>hi<｜Assistant｜><think>\n"));
        assert!(format.starts_in_reasoning("<|im_start|>assistant\n<think>\n"));
        assert!(!format.starts_in_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
        assert!(!format.starts_in_reasoning("<|im_start|>assistant\n"));
        assert!(!format.starts_in_reasoning(""));
    }
}
