//! The fuzz checks: one `pub fn <target>(data: &[u8])` per parser of untrusted input. Each feeds
//! the bytes to the parser and asserts what must hold of whatever it accepts; a panic is the
//! crash signal. Compiled twice: by the `cargo fuzz` targets in `fuzz_targets/` (nightly
//! features through RUSTC_BOOTSTRAP=1) and by `tests/api/fuzz_replay.rs`, which runs every file
//! of `fuzz/corpus/<target>/` through the same function on stable. See docs/fuzzing.md.
#![allow(dead_code)]

use std::collections::HashMap;

use futures_executor::block_on;
use phonenumber::country::Id;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use wafleet::broadcast::greeting;
use wafleet::broadcast::leads::csv::{parse_all, LeadCsvParser, ParsedRow};
use wafleet::broadcast::template::Template;
use wafleet::chat::media::{prepare_image as prepare, MAX_SENT_BYTES};
use wafleet::hub::Topic;
use wafleet::phone::{country_code, jid_of, normalize, parse_international, phone_of_jid, user_of};
use wafleet::web::ws::protocol::ClientOp;
use wafleet::whatsapp::remote::protocol::{
    read_line, ControlCall, Hello, Request, RequestId, ServerLine, SessionCall,
};

/// Default countries the phone and CSV checks read national numbers as (the first input byte
/// picks one).
const COUNTRIES: [&str; 8] = ["MY", "ID", "US", "GB", "IN", "SG", "BR", "DE"];

/// Longest side of a prepared picture (`MAX_SIDE` in src/chat/media.rs).
const MAX_SIDE: u32 = 1600;

/// Whether `phone` is E.164 digits: 7 to 15 ASCII digits, no plus.
fn is_e164(phone: &str) -> bool {
    (7..=15).contains(&phone.len()) && phone.bytes().all(|b| b.is_ascii_digit())
}

/// The first byte picks a default country; the rest is the input.
fn country_and_rest(data: &[u8]) -> Option<(Id, &[u8])> {
    let (&pick, rest) = data.split_first()?;
    let iso = COUNTRIES[usize::from(pick) % COUNTRIES.len()];
    Some((country_code(iso).expect("known country"), rest))
}

/// Lead CSV import (`broadcast::leads::csv`): the whole file at once and the same file fed in
/// small chunks give the same rows; rows come out in line order; an accepted row's phone is
/// E.164 digits.
pub fn csv_import(data: &[u8]) {
    let Some((country, file)) = country_and_rest(data) else {
        return;
    };
    let whole = parse_all(file, country);
    // Chunk size from the input too, so the fuzzer explores splits inside quotes and CRLFs.
    let chunk = usize::from(data[0] / 8) % 13 + 1;
    let mut parser = LeadCsvParser::new(country);
    let mut rows = Vec::new();
    let chunked = file
        .chunks(chunk)
        .try_for_each(|piece| parser.feed(piece, &mut rows))
        .and_then(|()| parser.finish(&mut rows))
        .map(|()| rows);
    assert_eq!(whole, chunked, "chunks of {chunk} bytes parse differently");
    let Ok(rows) = whole else {
        return;
    };
    assert_eq!(
        parser.records(),
        rows.len() as u64 + 1,
        "records = rows + header"
    );
    let lines = 1 + file.iter().filter(|b| **b == b'\n').count() as u64;
    let mut previous = 1;
    for ParsedRow { line, lead } in &rows {
        assert!(
            *line >= previous && *line <= lines,
            "row line {line} after {previous}"
        );
        previous = *line;
        if let Ok(lead) = lead {
            assert!(is_e164(&lead.phone), "imported phone {:?}", lead.phone);
        }
    }
}

/// Phones and JIDs (`phone`): a normalised phone is E.164 digits and its international forms
/// normalise to it again; `parse_international` and `phone_of_jid` give digits taken from the
/// input.
pub fn phone(data: &[u8]) {
    let Some((country, rest)) = country_and_rest(data) else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if let Ok(phone) = normalize(&text, country) {
        assert!(is_e164(&phone), "{text:?} normalised to {phone:?}");
        assert_eq!(
            normalize(&format!("+{phone}"), country).as_deref(),
            Ok(phone.as_str()),
            "+{phone} (from {text:?}) does not normalise to itself"
        );
        assert_eq!(phone_of_jid(&jid_of(&phone)), Some(phone.as_str()));
    }
    if let Some(digits) = parse_international(&text) {
        assert!(
            digits.len() >= 8 && is_e164(&digits),
            "{text:?} → {digits:?}"
        );
        assert!(text.contains(&digits));
        assert_eq!(
            parse_international(&digits).as_deref(),
            Some(digits.as_str())
        );
        assert_eq!(
            parse_international(&format!("+{digits}")).as_deref(),
            Some(digits.as_str())
        );
    }
    if let Some(user) = phone_of_jid(&text) {
        assert!(is_e164(user), "{text:?} → {user:?}");
        assert!(text.starts_with(user) && user_of(&text).starts_with(user));
    }
}

/// Message templates (`broadcast::template`): a template that parses renders without panic; its
/// variables are identifiers written in the text; with no variable values the output has no
/// braces, is no longer than the text, and is itself a plain template that renders to itself.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(template) = Template::parse(text) else {
        return;
    };
    let lower = text.to_lowercase();
    let names = template.variables();
    for name in &names {
        // Lowercased identifiers: `{İstanbul}` is the variable "i\u{307}stanbul" (a combining
        // dot), so only "starts with a letter, no braces, bars or spaces" holds after lowering.
        assert!(
            name.chars().next().is_some_and(char::is_alphabetic),
            "{name:?}"
        );
        assert!(!name.contains(['{', '}', '|', ' ']), "{name:?}");
        assert!(lower.contains(name.as_str()), "{name:?} is not in {text:?}");
    }
    let seed = data
        .iter()
        .fold(0_u64, |h, b| h.rotate_left(5) ^ u64::from(*b));
    let mut rng = StdRng::seed_from_u64(seed);
    let bare = template.render(&HashMap::new(), &mut rng);
    // `{greeting}` stays as its slot for the send to fill; nothing else of the syntax survives.
    let unslotted = bare.replace(greeting::SLOT, "");
    assert!(
        !unslotted.contains(['{', '}']),
        "{text:?} rendered {bare:?}"
    );
    assert!(bare.chars().count() <= text.chars().count());
    if !bare.trim().is_empty() {
        let plain = Template::parse(&bare).expect("a rendered message is a valid template");
        assert!(plain.variables().iter().all(|v| v == greeting::VARIABLE));
        assert_eq!(plain.render(&HashMap::new(), &mut rng), bare);
    }
    let vars: HashMap<String, String> = names
        .into_iter()
        .map(|name| (name, "Ali {x}".to_owned()))
        .collect();
    let _ = template.render(&vars, &mut rng);
}

/// WebSocket client frames (`web::ws::protocol::ClientOp`, topics of `hub::Topic`): an op that
/// parses, written back as the JSON the protocol documents, parses to the same op; a topic name
/// that parses prints as a name that parses to the same topic.
pub fn ws_client_op(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(op) = serde_json::from_str::<ClientOp>(text) else {
        return;
    };
    let (json, topics) = match &op {
        ClientOp::Subscribe { topics } => (
            serde_json::json!({"op": "subscribe", "topics": topics}),
            topics.as_slice(),
        ),
        ClientOp::Unsubscribe { topics } => (
            serde_json::json!({"op": "unsubscribe", "topics": topics}),
            topics.as_slice(),
        ),
        ClientOp::Ping => (serde_json::json!({"op": "ping"}), &[][..]),
    };
    let again: ClientOp = serde_json::from_str(&json.to_string()).expect("written op parses");
    assert_eq!(again, op);
    for name in topics {
        if let Some(topic) = Topic::parse(name) {
            assert_eq!(Topic::parse(&topic.to_string()), Some(topic), "{name:?}");
        }
    }
}

/// Simulator protocol (`whatsapp::remote::protocol`): the bounded line reader splits the input
/// exactly at its line breaks; every line is read as each message the server and client read,
/// and whatever parses writes back to a line that parses to the same value.
pub fn sim_protocol(data: &[u8]) {
    let mut reader = data;
    let mut line = String::new();
    let mut consumed = 0;
    loop {
        match block_on(read_line(&mut reader, &mut line)) {
            Ok(true) => {
                let end = consumed + line.len();
                assert_eq!(&data[consumed..end], line.as_bytes());
                assert_eq!(data.get(end), Some(&b'\n'));
                consumed = end + 1;
                sim_line(&line);
            }
            Ok(false) => {
                assert_eq!(consumed, data.len(), "stopped before the end");
                return;
            }
            Err(_) => {
                let rest = &data[consumed..];
                let bad_utf8 = rest.split(|b| *b == b'\n').next().map(std::str::from_utf8);
                assert!(
                    !rest.contains(&b'\n') || matches!(bad_utf8, Some(Err(_))),
                    "refused a complete UTF-8 line"
                );
                return;
            }
        }
    }
}

/// One protocol line, read as every message type.
fn sim_line(line: &str) {
    round_trip::<Hello>(line);
    round_trip::<Request<SessionCall>>(line);
    round_trip::<Request<ControlCall>>(line);
    round_trip::<ServerLine>(line);
    let _ = serde_json::from_str::<RequestId>(line);
}

/// If `line` parses as `T`, its JSON parses back to the same value.
fn round_trip<T>(line: &str)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let Ok(value) = serde_json::from_str::<T>(line) else {
        return;
    };
    let written = serde_json::to_string(&value).expect("a parsed message serialises");
    let again = serde_json::from_str::<T>(&written).expect("a written message parses");
    if again != value {
        // serde_json (without its `float_roundtrip` feature) may read a float one unit in the
        // last place off, e.g. 2.2222222222222222e64 as …225e64 (found by this target): allowed
        // for floats in free-form JSON, nothing else.
        let (a, b) = (serde_json::to_value(&again), serde_json::to_value(&value));
        let (a, b) = (a.expect("serialises"), b.expect("serialises"));
        assert!(
            same_but_float_rounding(&a, &b),
            "{line:?} → {written:?}: {again:?} ≠ {value:?}"
        );
    }
}

/// Whether two JSON values are equal, numbers within one unit in the last place.
fn same_but_float_rounding(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_but_float_rounding(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_but_float_rounding(v, w)))
        }
        _ => a == b,
    }
}

/// Picture preparation (`chat::media::prepare_image`): an accepted picture comes out as a JPEG
/// within the size and side limits, which is itself accepted unchanged in size.
pub fn prepare_image(data: &[u8]) {
    let Ok(prepared) = prepare(data) else {
        return;
    };
    assert!(prepared.data.len() <= MAX_SENT_BYTES);
    assert!(prepared.data.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    assert!(
        (1..=MAX_SIDE).contains(&prepared.width),
        "{}",
        prepared.width
    );
    assert!(
        (1..=MAX_SIDE).contains(&prepared.height),
        "{}",
        prepared.height
    );
    let again = prepare(&prepared.data).expect("a prepared picture is accepted");
    assert_eq!(
        (again.width, again.height),
        (prepared.width, prepared.height)
    );
}
