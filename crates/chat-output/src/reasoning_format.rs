//! How a model marks its reasoning ("thinking") apart from its answer.

/// What marks a harmony template (and only one): the header token naming a message's channel.
pub(crate) const HARMONY_CHANNEL: &str = "<|channel|>";

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
    /// OpenAI's harmony format (gpt-oss): the output is a series of messages, each a header
    /// naming its channel, then `<|message|>` and the text; the reasoning is the `analysis`
    /// channel and the answer the `final` one (also `commentary` without a recipient: preambles
    /// to tool calls). The generation prompt ends with `<|start|>assistant`, so the output
    /// starts with the first message's header:
    ///
    /// ```text
    /// <|channel|>analysis<|message|>The user greets.<|end|><|start|>assistant<|channel|>final<|message|>Hi!
    /// ```
    ///
    /// Recognised by `<|channel|>` in the template (gpt-oss:
    /// `{{- "<|start|>assistant<|channel|>final<|message|>" + message.content + "<|end|>" }}`).
    /// The text given to the parser must keep the format's tokens (`<|start|>`, `<|channel|>`,
    /// `<|message|>`, `<|end|>`, `<|constrain|>`); `<|return|>` and `<|call|>` end the
    /// generation and may be left out. Tool calls in this format are
    /// [`ToolCallFormat::Harmony`](crate::ToolCallFormat::Harmony).
    Harmony,
}

impl ReasoningFormat {
    /// The reasoning syntax the template's source uses, if any.
    pub fn detect(template_source: &str) -> Option<ReasoningFormat> {
        if template_source.contains(HARMONY_CHANNEL) {
            Some(ReasoningFormat::Harmony)
        } else {
            (template_source.contains("<think>") || template_source.contains("</think>"))
                .then_some(ReasoningFormat::Think)
        }
    }

    /// The tag that opens a reasoning block (for harmony, the header of an `analysis` message
    /// after `<|start|>assistant`).
    pub fn open_tag(self) -> &'static str {
        match self {
            ReasoningFormat::Think => "<think>",
            ReasoningFormat::Harmony => "<|channel|>analysis<|message|>",
        }
    }

    /// The tag that closes a reasoning block (for harmony, the end of the `analysis` message).
    pub fn close_tag(self) -> &'static str {
        match self {
            ReasoningFormat::Think => "</think>",
            ReasoningFormat::Harmony => "<|end|>",
        }
    }

    /// Whether the rendered prompt leaves the model inside an open reasoning block, so that its
    /// output starts with reasoning and has no opening tag: DeepSeek-R1 templates, and Qwen3 with
    /// `enable_thinking`, end the generation prompt with `<think>\n`. A prompt that also closes
    /// the block (Qwen3's `<think>\n\n</think>\n\n` with thinking disabled) does not. A
    /// harmony prompt starts in reasoning only when it ends with an open `analysis` message
    /// (gpt-oss's own ends with `<|start|>assistant`: the model writes the header).
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
        let gpt_oss =
            "{{- \"<|start|>assistant<|channel|>analysis<|message|>\" + message.thinking \
                       + \"<|end|>\" }}";
        assert_eq!(ReasoningFormat::detect(gpt_oss), Some(ReasoningFormat::Harmony));
    }

    #[test]
    fn open_think_at_the_end_of_the_prompt_starts_in_reasoning() {
        let format = ReasoningFormat::Think;
        assert!(format.starts_in_reasoning("<｜User｜>hi<｜Assistant｜><think>\n"));
        assert!(format.starts_in_reasoning("<|im_start|>assistant\n<think>\n"));
        assert!(!format.starts_in_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
        assert!(!format.starts_in_reasoning("<|im_start|>assistant\n"));
        assert!(!format.starts_in_reasoning(""));
        let harmony = ReasoningFormat::Harmony;
        let prompt = "<|start|>user<|message|>Hi<|end|><|start|>assistant";
        assert!(!harmony.starts_in_reasoning(prompt));
        assert!(harmony.starts_in_reasoning("<|start|>assistant<|channel|>analysis<|message|>"));
    }
}
