//! Streaming CSV parsing of lead files: bytes go in as they arrive from the network, validated
//! rows come out with the physical line each started on. Pure: no I/O, no database.
//!
//! The first record is the header. Columns are matched by name, case-insensitively: `name`,
//! `phone` (required; `phone_number`, `mobile`, `whatsapp` and `number` are accepted too),
//! `niche`, `tags` (split on `;`, `|` or `,`), `status`; every other column becomes a custom
//! field under its header text. Blank lines are skipped; a UTF-8 byte order mark is ignored.
//! A bad row never stops the file: it comes out as an error with its line number and reason.

use csv_core::{ReadRecordResult, Reader};
use phonenumber::country::Id;

use super::model::{echo, normalize_status, split_tags, LeadInput, MAX_ECHO_CHARS};
use crate::phone;

/// A record longer than this (bytes) is reported as an error and skipped: in practice a quote
/// that was never closed, which would otherwise swallow the rest of the file into memory.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// A record with more fields than this is reported as an error and skipped.
pub const MAX_FIELDS: usize = 1024;

/// Header columns quoted back when none is a phone column.
const MAX_ECHOED_COLUMNS: usize = 20;

/// Names the phone column may have.
const PHONE_HEADERS: &[&str] = &["phone", "phone_number", "mobile", "whatsapp", "number"];

/// One data row of the file: where it started and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRow {
    /// Physical line the record starts on (the header is line 1).
    pub line: u64,
    /// The lead, or why the row was rejected.
    pub lead: Result<LeadInput, String>,
}

/// A file that cannot be imported at all (nothing of it is written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No header line.
    #[error("the file is empty; the first line must name the columns (name, phone, …)")]
    Empty,
    /// The header has no phone column.
    #[error("the header (line 1) has no phone column; found: {0}")]
    NoPhoneColumn(String),
    /// The header is not text.
    #[error("the header (line 1) is not valid UTF-8")]
    NotUtf8,
    /// The header is longer than any sane header.
    #[error("the header (line 1) is longer than {MAX_RECORD_BYTES} bytes or {MAX_FIELDS} columns")]
    TooLong,
}

/// What a column holds.
#[derive(Debug, Clone, PartialEq)]
enum Column {
    Name,
    Phone,
    Niche,
    Tags,
    Status,
    /// A custom field, by header text.
    Field(String),
    /// A column without a header name: ignored.
    Unnamed,
}

/// A push parser of one lead file.
pub struct LeadCsvParser {
    reader: Reader,
    country: Id,
    columns: Option<Vec<Column>>,
    /// Bytes of the current record's fields (`out[..out_len]`).
    out: Vec<u8>,
    out_len: usize,
    /// End offsets of the current record's fields (`ends[..ends_len]`).
    ends: Vec<usize>,
    ends_len: usize,
    /// The current record passed a limit: its content is being discarded.
    oversize: bool,
    /// `\n` bytes consumed so far.
    newlines: u64,
    /// Line of the current record's first byte, once it has one.
    record_line: Option<u64>,
    /// Records read, header included.
    records: u64,
}

impl LeadCsvParser {
    /// A parser reading numbers without a country code as numbers of `country`.
    pub fn new(country: Id) -> Self {
        Self {
            reader: Reader::new(),
            country,
            columns: None,
            out: vec![0; 4096],
            out_len: 0,
            ends: vec![0; 32],
            ends_len: 0,
            oversize: false,
            newlines: 0,
            record_line: None,
            records: 0,
        }
    }

    /// Records read so far, header included.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Parses `chunk` (any split of the file), appending every completed data row to `rows`.
    pub fn feed(&mut self, chunk: &[u8], rows: &mut Vec<ParsedRow>) -> Result<(), HeaderError> {
        let mut input = chunk;
        while !input.is_empty() {
            let done = self.step(input, rows)?;
            input = &input[done..];
        }
        Ok(())
    }

    /// Ends the file: emits the last row if it had no line break, and checks there was a header.
    pub fn finish(&mut self, rows: &mut Vec<ParsedRow>) -> Result<(), HeaderError> {
        loop {
            let (result, _, nout, nend) = self.reader.read_record(
                &[],
                &mut self.out[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            self.out_len += nout;
            self.ends_len += nend;
            match result {
                ReadRecordResult::Record => self.complete(rows)?,
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => self.grow(),
                ReadRecordResult::End | ReadRecordResult::InputEmpty => break,
            }
        }
        if self.columns.is_none() {
            return Err(HeaderError::Empty);
        }
        Ok(())
    }

    /// Runs the reader over a non-empty `input` once; returns the bytes consumed.
    fn step(&mut self, input: &[u8], rows: &mut Vec<ParsedRow>) -> Result<usize, HeaderError> {
        let (result, nin, nout, nend) = self.reader.read_record(
            input,
            &mut self.out[self.out_len..],
            &mut self.ends[self.ends_len..],
        );
        self.count_lines(&input[..nin]);
        self.out_len += nout;
        self.ends_len += nend;
        match result {
            ReadRecordResult::Record => self.complete(rows)?,
            ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => self.grow(),
            ReadRecordResult::InputEmpty | ReadRecordResult::End => {}
        }
        Ok(nin)
    }

    /// Notes the line a record starts on (the reader skips blank lines before a record) and
    /// counts line breaks.
    fn count_lines(&mut self, consumed: &[u8]) {
        if self.record_line.is_none() {
            if let Some(first) = consumed.iter().position(|b| *b != b'\n' && *b != b'\r') {
                let before = consumed[..first].iter().filter(|b| **b == b'\n').count();
                self.record_line = Some(self.newlines + before as u64 + 1);
            }
        }
        self.newlines += consumed.iter().filter(|b| **b == b'\n').count() as u64;
    }

    /// Makes room for a long record, or starts discarding it past the limits.
    fn grow(&mut self) {
        if self.out_len >= self.out.len() {
            if self.out.len() >= MAX_RECORD_BYTES {
                self.oversize = true;
                self.out_len = 0;
            } else {
                self.out.resize(self.out.len() * 2, 0);
            }
        }
        if self.ends_len >= self.ends.len() {
            if self.ends.len() >= MAX_FIELDS {
                self.oversize = true;
                self.ends_len = 0;
            } else {
                self.ends.resize(self.ends.len() * 2, 0);
            }
        }
    }

    /// Handles a completed record: the header, or a data row.
    fn complete(&mut self, rows: &mut Vec<ParsedRow>) -> Result<(), HeaderError> {
        let line = self.record_line.take().unwrap_or(self.newlines + 1);
        let oversize = std::mem::take(&mut self.oversize);
        let (out_len, ends_len) = (self.out_len, self.ends_len);
        self.out_len = 0;
        self.ends_len = 0;
        self.records += 1;
        if oversize {
            if self.columns.is_none() {
                return Err(HeaderError::TooLong);
            }
            let lead = Err(format!(
                "record longer than {MAX_RECORD_BYTES} bytes or {MAX_FIELDS} columns (a quote never closed?)"
            ));
            rows.push(ParsedRow { line, lead });
            return Ok(());
        }
        let fields = split_fields(&self.out[..out_len], &self.ends[..ends_len]);
        match &self.columns {
            None => {
                self.columns = Some(header_columns(&fields)?);
                Ok(())
            }
            Some(columns) => {
                let lead = row_lead(columns, &fields, self.country);
                rows.push(ParsedRow { line, lead });
                Ok(())
            }
        }
    }
}

/// The fields of a record, as byte slices.
fn split_fields<'a>(out: &'a [u8], ends: &[usize]) -> Vec<&'a [u8]> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let end = end.min(out.len()).max(start);
            let field = &out[start..end];
            start = end;
            field
        })
        .collect()
}

/// Reads the header record.
fn header_columns(fields: &[&[u8]]) -> Result<Vec<Column>, HeaderError> {
    let mut columns = Vec::with_capacity(fields.len());
    for raw in fields {
        let text = std::str::from_utf8(raw).map_err(|_| HeaderError::NotUtf8)?;
        let text = text.trim_start_matches('\u{feff}').trim();
        let key = text.to_lowercase();
        let column = match key.as_str() {
            "" => Column::Unnamed,
            "name" => Column::Name,
            "niche" => Column::Niche,
            "tags" => Column::Tags,
            "status" => Column::Status,
            k if PHONE_HEADERS.contains(&k) && !columns.contains(&Column::Phone) => Column::Phone,
            _ => Column::Field(text.to_string()),
        };
        columns.push(column);
    }
    if !columns.contains(&Column::Phone) {
        let mut found: Vec<String> = fields
            .iter()
            .take(MAX_ECHOED_COLUMNS)
            .map(|f| echo(&String::from_utf8_lossy(f)))
            .collect();
        if fields.len() > MAX_ECHOED_COLUMNS {
            found.push(format!("… ({} columns)", fields.len()));
        }
        return Err(HeaderError::NoPhoneColumn(found.join(", ")));
    }
    Ok(columns)
}

/// Validates one data record against the header.
fn row_lead(columns: &[Column], fields: &[&[u8]], country: Id) -> Result<LeadInput, String> {
    if fields.len() != columns.len() {
        return Err(format!(
            "wrong column count: expected {}, found {}",
            columns.len(),
            fields.len()
        ));
    }
    let mut lead = LeadInput::default();
    let mut phone_raw = "";
    for (index, (column, raw)) in columns.iter().zip(fields).enumerate() {
        let value = std::str::from_utf8(raw)
            .map_err(|_| format!("invalid UTF-8 in column {}", index + 1))?
            .trim();
        match column {
            Column::Name => lead.name = value.to_string(),
            Column::Phone => phone_raw = value,
            Column::Niche => lead.niche = (!value.is_empty()).then(|| value.to_string()),
            Column::Tags => lead.tags = split_tags(value)?,
            Column::Status if value.is_empty() => {}
            Column::Status => lead.status = Some(normalize_status(value)?),
            Column::Field(name) if !value.is_empty() => {
                lead.fields.insert(name.clone(), value.to_string());
            }
            Column::Field(_) | Column::Unnamed => {}
        }
    }
    if phone_raw.chars().count() > MAX_ECHO_CHARS {
        // No phone number is this long; the parser would quote all of it back.
        return Err(format!(
            "bad phone: not a phone number: {}",
            echo(phone_raw)
        ));
    }
    lead.phone = match phone::normalize(phone_raw, country) {
        Ok(phone) => phone,
        Err(phone::PhoneError::Empty) => return Err("missing phone".into()),
        Err(err) => return Err(format!("bad phone: {err}")),
    };
    Ok(lead)
}

/// Parses a whole file at once (tests and small bodies). Pure and total (an error or rows,
/// never a panic, for any bytes): the entry point fuzzers call; [`LeadCsvParser`] is the same
/// parser fed chunk by chunk.
pub fn parse_all(bytes: &[u8], country: Id) -> Result<Vec<ParsedRow>, HeaderError> {
    let mut parser = LeadCsvParser::new(country);
    let mut rows = Vec::new();
    parser.feed(bytes, &mut rows)?;
    parser.finish(&mut rows)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn my() -> Id {
        phone::country_code("MY").unwrap()
    }

    fn lines_and_errors(rows: &[ParsedRow]) -> Vec<(u64, Option<String>)> {
        rows.iter()
            .map(|r| (r.line, r.lead.as_ref().err().cloned()))
            .collect()
    }

    #[test]
    fn good_rows_map_columns_by_header_name() {
        let csv = "\u{feff}Name,PHONE,Niche,Tags,Status,City\n\
                   Ali,012-345 6789,Food,VIP;kl|vip,Customer,KL\n";
        let rows = parse_all(csv.as_bytes(), my()).unwrap();
        assert_eq!(rows.len(), 1);
        let lead = rows[0].lead.clone().unwrap();
        assert_eq!(rows[0].line, 2);
        assert_eq!(lead.name, "Ali");
        assert_eq!(lead.phone, "60123456789");
        assert_eq!(lead.niche.as_deref(), Some("Food"));
        assert_eq!(lead.tags, ["vip", "kl"]);
        assert_eq!(lead.status.as_deref(), Some("customer"));
        assert_eq!(lead.fields.get("City").map(String::as_str), Some("KL"));
    }

    #[test]
    fn bad_rows_carry_their_physical_line_and_reason() {
        let mut csv = b"name,phone\r\n\
            A,0123456789\r\n\
            \r\n\
            B,not a phone\r\n\
            C\r\n\
            \"D\nstill D\",0123456788\r\n\
            E,\r\n"
            .to_vec();
        csv.extend_from_slice(b"F\xff,0123456787\r\nG,0123456786");
        let rows = parse_all(&csv, my()).unwrap();
        let got = lines_and_errors(&rows);
        assert_eq!(got[0], (2, None));
        assert_eq!(got[1].0, 4);
        assert!(got[1].1.as_deref().unwrap().starts_with("bad phone"));
        assert_eq!(
            got[2],
            (5, Some("wrong column count: expected 2, found 1".into()))
        );
        assert_eq!(got[3], (6, None));
        assert_eq!(got[4], (8, Some("missing phone".into())));
        assert_eq!(got[5], (9, Some("invalid UTF-8 in column 1".into())));
        assert_eq!(got[6], (10, None));
        assert_eq!(rows[3].lead.as_ref().unwrap().name, "D\nstill D");
    }

    #[test]
    fn any_chunking_gives_the_same_rows() {
        let csv = "name,phone,tags\nA,0123456789,x\n\"B, jr\",0123456788,\"y;z\"\nC,bad,\n";
        let whole = parse_all(csv.as_bytes(), my()).unwrap();
        for size in 1..8 {
            let mut parser = LeadCsvParser::new(my());
            let mut rows = Vec::new();
            for chunk in csv.as_bytes().chunks(size) {
                parser.feed(chunk, &mut rows).unwrap();
            }
            parser.finish(&mut rows).unwrap();
            assert_eq!(rows, whole, "chunks of {size}");
        }
        assert_eq!(whole.len(), 3);
    }

    #[test]
    fn an_unclosed_quote_is_one_reported_row_not_a_memory_hog() {
        let mut csv = String::from("name,phone\n\"A,0123456789\n");
        for _ in 0..20_000 {
            csv.push_str("B,0123456788\n");
        }
        let rows = parse_all(csv.as_bytes(), my()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].line, 2);
        assert!(rows[0].lead.as_ref().unwrap_err().contains("longer than"));
    }

    #[test]
    fn long_cells_are_cut_in_row_errors_and_header_errors() {
        let cell = "9".repeat(60_000);
        let csv = format!("name,phone,status\nA,{cell},\nB,0123456789,{cell}\n");
        let rows = parse_all(csv.as_bytes(), my()).unwrap();
        let errors: Vec<String> = rows.iter().map(|r| r.lead.clone().unwrap_err()).collect();
        let quoted = format!("\"{}\"…", "9".repeat(64));
        assert_eq!(
            errors[0],
            format!("bad phone: not a phone number: {quoted}")
        );
        assert!(
            errors[1].starts_with(&format!("bad status {quoted}")),
            "{}",
            errors[1]
        );
        assert!(errors.iter().all(|e| e.len() < 150));
        let header = format!("{},{}\n", cell, vec!["x"; 100].join(","));
        let Err(HeaderError::NoPhoneColumn(found)) = parse_all(header.as_bytes(), my()) else {
            panic!("a header without a phone column");
        };
        assert!(found.starts_with(&quoted) && found.ends_with("… (101 columns)"));
        assert!(found.len() < 300, "{found}");
    }

    #[test]
    fn headers_without_a_phone_column_or_empty_files_are_refused() {
        assert_eq!(parse_all(b"", my()), Err(HeaderError::Empty));
        assert_eq!(parse_all(b"\n\n", my()), Err(HeaderError::Empty));
        assert!(matches!(
            parse_all(b"name,city\nA,KL\n", my()),
            Err(HeaderError::NoPhoneColumn(_))
        ));
        assert!(parse_all(b"Name,Mobile\n", my()).unwrap().is_empty());
    }
}
