//! Message templates: `{name}`-style variables and `{Hi|Hello}` spintax (nestable), checked when a
//! campaign is saved and rendered once per lead (the rendered text is stored in the outbox, so a
//! resend is the same message). `{greeting}` is the exception: unless the variables give it (a
//! preview), it stays in the text as [`greeting::SLOT`] and the send fills it in
//! ([`crate::broadcast::greeting`]).

use std::collections::HashMap;

use crate::broadcast::greeting;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The parts in order.
    parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Literal text.
    Text(String),
    /// `{name}`: a lead variable (empty when the lead has none).
    Var(String),
    /// `{a|b|c}`: one alternative, chosen at random per lead.
    Spin(Vec<Template>),
}

/// Why a template is invalid; the message names the position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Longest template accepted (WhatsApp's own limit is 65,536 characters).
const MAX_CHARS: usize = 4_096;
/// Deepest nesting of `{…}` groups accepted: `{a|{b|c}}` is 2. Parsing, rendering and dropping
/// a template recurse once per level, so an unbounded depth (2,000 `{` fit in [`MAX_CHARS`])
/// would overflow the stack.
pub const MAX_NESTING: usize = 8;

impl Template {
    /// Parses and validates `text`: at most 4,096 characters, groups nested at most
    /// [`MAX_NESTING`] deep. Pure and total (an error, never a panic, for any input): the entry
    /// point fuzzers call.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError("message must not be empty".into()));
        }
        if text.chars().count() > MAX_CHARS {
            return Err(TemplateError(format!(
                "message is longer than {MAX_CHARS} characters"
            )));
        }
        let chars: Vec<char> = text.chars().collect();
        let mut pos = 0;
        let template = parse_seq(&chars, &mut pos, 0)?;
        if pos < chars.len() {
            return Err(TemplateError(format!(
                "unexpected '{}' at {}",
                chars[pos],
                pos + 1
            )));
        }
        Ok(template)
    }

    /// The text for one lead: variables from `vars` (missing ones render empty, but a missing
    /// `greeting` stays as its slot for the send to fill), one random alternative per spintax
    /// group.
    pub fn render(&self, vars: &HashMap<String, String>, rng: &mut impl rand::Rng) -> String {
        let mut out = String::new();
        self.render_into(vars, rng, &mut out);
        // Missing variables can leave doubled spaces ("Hi  ,"); tidy them.
        let mut tidy = String::with_capacity(out.len());
        for ch in out.chars() {
            if ch == ' ' && tidy.ends_with(' ') {
                continue;
            }
            tidy.push(ch);
        }
        tidy.trim().to_string()
    }

    fn render_into(
        &self,
        vars: &HashMap<String, String>,
        rng: &mut impl rand::Rng,
        out: &mut String,
    ) {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(name) => {
                    if let Some(value) = vars.get(name) {
                        out.push_str(value);
                    } else if name == greeting::VARIABLE {
                        out.push_str(greeting::SLOT);
                    }
                }
                Part::Spin(options) => {
                    let pick = rng.random_range(0..options.len());
                    options[pick].render_into(vars, rng, out);
                }
            }
        }
    }

    /// Every variable name the template uses.
    pub fn variables(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.collect_vars(&mut names);
        names.sort();
        names.dedup();
        names
    }

    fn collect_vars(&self, names: &mut Vec<String>) {
        for part in &self.parts {
            match part {
                Part::Var(name) => names.push(name.clone()),
                Part::Spin(options) => options.iter().for_each(|o| o.collect_vars(names)),
                Part::Text(_) => {}
            }
        }
    }
}

/// Parses until the end (top level, `depth` 0) or a closing `}` / `|` (inside a group, not
/// consumed); `depth` is the number of groups around.
fn parse_seq(chars: &[char], pos: &mut usize, depth: usize) -> Result<Template, TemplateError> {
    let nested = depth > 0;
    let mut parts = Vec::new();
    let mut text = String::new();
    while *pos < chars.len() {
        match chars[*pos] {
            '{' => {
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(parse_group(chars, pos, depth + 1)?);
            }
            '}' | '|' if nested => break,
            '}' => {
                return Err(TemplateError(format!(
                    "'}}' at {} has no matching '{{'",
                    *pos + 1
                )))
            }
            ch => {
                text.push(ch);
                *pos += 1;
            }
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(Template { parts })
}

/// Parses a `{…}` group at `pos`, the `depth`-th around its content: a variable or a spintax
/// choice.
fn parse_group(chars: &[char], pos: &mut usize, depth: usize) -> Result<Part, TemplateError> {
    let open = *pos;
    if depth > MAX_NESTING {
        return Err(TemplateError(format!(
            "'{{' at {} nests groups more than {MAX_NESTING} deep",
            open + 1
        )));
    }
    *pos += 1;
    let mut options = vec![parse_seq(chars, pos, depth)?];
    loop {
        match chars.get(*pos) {
            Some('|') => {
                *pos += 1;
                options.push(parse_seq(chars, pos, depth)?);
            }
            Some('}') => {
                *pos += 1;
                break;
            }
            _ => {
                return Err(TemplateError(format!(
                    "'{{' at {} is never closed",
                    open + 1
                )))
            }
        }
    }
    if options.len() == 1 {
        let inner = &options[0].parts;
        return match inner.as_slice() {
            [Part::Text(name)] if is_identifier(name) => Ok(Part::Var(name.to_lowercase())),
            _ => Err(TemplateError(format!(
                "'{{…}}' at {} must be a variable like {{name}} or choices like {{Hi|Hello}}",
                open + 1
            ))),
        };
    }
    Ok(Part::Spin(options))
}

/// Letters, digits and underscores, starting with a letter.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic())
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        HashMap::from([
            ("name".to_string(), "Aisyah".to_string()),
            ("city".to_string(), "Ipoh".to_string()),
        ])
    }

    #[test]
    fn variables_and_plain_text_render() {
        let t = Template::parse("Hi {name} from {City}!").unwrap();
        assert_eq!(t.render(&vars(), &mut rand::rng()), "Hi Aisyah from Ipoh!");
        assert_eq!(t.variables(), vec!["city".to_string(), "name".to_string()]);
    }

    #[test]
    fn greeting_stays_for_the_send_unless_given() {
        let t = Template::parse("{Greeting} {name}!").unwrap();
        assert_eq!(
            t.variables(),
            vec!["greeting".to_string(), "name".to_string()]
        );
        assert_eq!(t.render(&vars(), &mut rand::rng()), "{greeting} Aisyah!");
        let mut given = vars();
        given.insert("greeting".into(), "Good evening".into());
        assert_eq!(t.render(&given, &mut rand::rng()), "Good evening Aisyah!");
    }

    #[test]
    fn missing_variables_render_empty_without_double_spaces() {
        let t = Template::parse("Hi {nickname} there").unwrap();
        assert_eq!(t.render(&vars(), &mut rand::rng()), "Hi there");
    }

    #[test]
    fn spintax_picks_every_option_over_many_renders() {
        let t = Template::parse("{Hi|Hello|Hey {name}}, {a|b}").unwrap();
        let mut rng = rand::rng();
        let seen: std::collections::HashSet<String> =
            (0..300).map(|_| t.render(&vars(), &mut rng)).collect();
        for expected in ["Hi, a", "Hello, b", "Hey Aisyah, a"] {
            assert!(seen.contains(expected), "{expected} missing from {seen:?}");
        }
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn malformed_templates_are_rejected_with_a_position() {
        for (text, needle) in [
            ("Hi {name", "never closed"),
            ("Hi name}", "no matching"),
            ("Hi {}", "must be a variable"),
            ("Hi {first name}", "must be a variable"),
            ("   ", "empty"),
        ] {
            let err = Template::parse(text).unwrap_err();
            assert!(err.0.contains(needle), "{text}: {err}");
        }
        assert!(
            Template::parse("{Hi|}").is_ok(),
            "an empty choice is allowed"
        );
    }

    /// `depth` groups, each a choice holding the next: `{a|{a|…}}`.
    fn nested(depth: usize) -> String {
        format!("{}x{}", "{a|".repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn nesting_is_bounded_with_a_clear_error_not_a_stack_overflow() {
        let deepest = Template::parse(&nested(MAX_NESTING)).unwrap();
        assert!(!deepest.render(&vars(), &mut rand::rng()).is_empty());
        let err = Template::parse(&nested(MAX_NESTING + 1)).unwrap_err();
        assert_eq!(
            err.0,
            format!(
                "'{{' at {} nests groups more than {MAX_NESTING} deep",
                3 * MAX_NESTING + 1
            )
        );
        // The most a 4,096-character message can nest, unclosed or closed: refused, no overflow
        // (a debug build overflowed its 2 MiB test-thread stack here before the limit).
        assert!(Template::parse(&"{".repeat(4_096)).is_err());
        assert!(Template::parse(&nested(1_023)).is_err());
    }
}
