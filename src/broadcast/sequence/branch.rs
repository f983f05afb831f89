//! Branching on a reply: what a step's `on_reply` rule makes of the lead's reply to it. Pure.
//!
//! A step may say what happens when the lead replies after receiving it: `continue` (the
//! next steps go on as if nothing happened), `stop` (the enrolment stops), or `jump` (it
//! stops, and the lead is enrolled in another sequence of the tenant). With a `keyword`, the
//! rule applies only to a reply containing that word (compared without case); any other reply
//! gets the sequence's default. A step without a rule, or a reply before any step was sent,
//! gets the default too: stop when the sequence stops on reply (the default), else continue.
//! A lead who does not reply simply continues.
//!
//! Jumps cannot loop: a step cannot jump to its own sequence, and a lead is enrolled at most
//! once per sequence, so jumping back to a sequence the lead was in enrols nobody.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a reply does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyAction {
    /// The sequence goes on.
    Continue,
    /// The enrolment stops (reason `replied`).
    Stop,
    /// The enrolment stops and the lead is enrolled in `sequence_id`.
    Jump,
}

impl ReplyAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Stop => "stop",
            Self::Jump => "jump",
        }
    }

    /// The action of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Continue, Self::Stop, Self::Jump]
            .into_iter()
            .find(|a| a.as_str() == name)
    }
}

/// A step's rule for a reply to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnReply {
    /// What the reply does.
    pub action: ReplyAction,
    /// Only a reply containing this word (without case); any reply when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
    /// The sequence a `jump` enrols the lead in (same tenant, not this sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_id: Option<i64>,
}

/// The longest keyword, in characters.
pub const MAX_KEYWORD_CHARS: usize = 32;

impl OnReply {
    /// Checks the rule's shape (the jump target's existence is the caller's to check): a jump
    /// names a sequence and only a jump does; a keyword is one word of at most
    /// [`MAX_KEYWORD_CHARS`] letters or digits. Answers the rule with its keyword lower-cased.
    pub fn checked(&self) -> Result<OnReply, String> {
        match (self.action, self.sequence_id) {
            (ReplyAction::Jump, None) => return Err("a jump needs sequence_id".into()),
            (ReplyAction::Continue | ReplyAction::Stop, Some(_)) => {
                return Err("only a jump takes sequence_id".into())
            }
            _ => {}
        }
        let keyword = match self.keyword.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(word) => {
                if word.chars().count() > MAX_KEYWORD_CHARS
                    || !word.chars().all(char::is_alphanumeric)
                {
                    return Err(format!(
                        "the keyword is one word of at most {MAX_KEYWORD_CHARS} letters or digits"
                    ));
                }
                Some(word.to_lowercase())
            }
        };
        Ok(OnReply {
            action: self.action,
            keyword,
            sequence_id: self.sequence_id,
        })
    }

    /// Whether this rule applies to a reply of `texts` (one message or several at once).
    pub fn matches(&self, texts: &[String]) -> bool {
        match &self.keyword {
            None => true,
            Some(keyword) => texts.iter().any(|text| {
                text.split(|c: char| !c.is_alphanumeric())
                    .any(|word| word.to_lowercase() == *keyword)
            }),
        }
    }
}

/// What becomes of an enrolment the lead replied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It goes on (the reply is noted).
    Continue,
    /// It stops.
    Stop,
    /// It stops and the lead is enrolled in this sequence.
    Jump(i64),
}

impl Decision {
    /// The reason an enrolment ended this way records and announces.
    pub fn reason(self) -> String {
        match self {
            Decision::Jump(target) => format!("replied: moved to sequence {target}"),
            Decision::Continue | Decision::Stop => "replied".to_string(),
        }
    }
}

/// Decides for a reply of `texts` after a step with `rule` (none: no rule, or no step sent
/// yet), in a sequence that stops on reply or not.
pub fn decide(rule: Option<&OnReply>, stop_on_reply: bool, texts: &[String]) -> Decision {
    let default = if stop_on_reply {
        Decision::Stop
    } else {
        Decision::Continue
    };
    match rule.filter(|rule| rule.matches(texts)) {
        None => default,
        Some(rule) => match (rule.action, rule.sequence_id) {
            (ReplyAction::Continue, _) => Decision::Continue,
            (ReplyAction::Stop, _) => Decision::Stop,
            (ReplyAction::Jump, Some(target)) => Decision::Jump(target),
            (ReplyAction::Jump, None) => default,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|t| t.to_string()).collect()
    }

    fn rule(action: ReplyAction, keyword: Option<&str>, sequence_id: Option<i64>) -> OnReply {
        OnReply {
            action,
            keyword: keyword.map(Into::into),
            sequence_id,
        }
        .checked()
        .unwrap()
    }

    #[test]
    fn without_a_rule_the_sequence_default_decides() {
        assert_eq!(decide(None, true, &texts(&["hi"])), Decision::Stop);
        assert_eq!(decide(None, false, &texts(&["hi"])), Decision::Continue);
    }

    #[test]
    fn a_keyword_rule_applies_to_that_word_only() {
        let jump = rule(ReplyAction::Jump, Some("YES"), Some(7));
        assert_eq!(
            decide(Some(&jump), true, &texts(&["Yes please!"])),
            Decision::Jump(7)
        );
        assert_eq!(
            decide(Some(&jump), true, &texts(&["no", "ok, yes."])),
            Decision::Jump(7)
        );
        assert_eq!(
            decide(Some(&jump), true, &texts(&["yesterday"])),
            Decision::Stop
        );
        assert_eq!(
            decide(Some(&jump), false, &texts(&["maybe"])),
            Decision::Continue
        );
        let keep = rule(ReplyAction::Continue, None, None);
        assert_eq!(
            decide(Some(&keep), true, &texts(&["anything"])),
            Decision::Continue
        );
        let stop = rule(ReplyAction::Stop, Some("stop"), None);
        assert_eq!(
            decide(Some(&stop), false, &texts(&["STOP"])),
            Decision::Stop
        );
    }

    #[test]
    fn malformed_rules_are_refused() {
        let bad = |action, keyword: Option<&str>, sequence_id| {
            OnReply {
                action,
                keyword: keyword.map(Into::into),
                sequence_id,
            }
            .checked()
            .unwrap_err()
        };
        assert!(bad(ReplyAction::Jump, None, None).contains("sequence_id"));
        assert!(bad(ReplyAction::Stop, None, Some(3)).contains("only a jump"));
        assert!(bad(ReplyAction::Stop, Some("two words"), None).contains("one word"));
        assert!(bad(ReplyAction::Stop, Some(&"x".repeat(33)), None).contains("one word"));
        assert_eq!(rule(ReplyAction::Stop, Some("  "), None).keyword, None);
        assert_eq!(ReplyAction::parse("jump"), Some(ReplyAction::Jump));
        assert_eq!(ReplyAction::parse("leap"), None);
    }
}
