//! CSV import into a lead list, streamed: records are parsed as the body's chunks arrive and
//! written in transactions of [`BATCH_ROWS`], so a 100,000-row file never sits in memory. The
//! next batch is parsed while the previous one commits.
//!
//! Rules: a phone seen earlier in the same file is counted in `duplicates` (the first row wins);
//! a phone already in the list updates that lead with the row's non-empty values (`updated`);
//! a bad row is counted in `failed` and reported with its line number and reason (the first
//! [`MAX_REPORTED_ERRORS`]; quoted values cut to 64 characters). Rows committed before a failure
//! of the body or the database stay.
//!
//! Memory does not grow with the file: phones seen in earlier batches are recognised by the
//! database (every lead the import writes carries its start time, see
//! [`store::write_import_batch`]), so only the current batch's phones are held.

use std::collections::HashSet;
use std::fmt::Display;

use futures_util::{Stream, StreamExt};
use phonenumber::country::Id;
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::csv::{HeaderError, LeadCsvParser, ParsedRow};
use super::model::LeadInput;
use super::store;
use crate::db::{on_blocking_pool, to_micros, Db, DbError};

/// Rows per write transaction.
pub const BATCH_ROWS: usize = 1000;
/// Parsed batches waiting for the writer, at most: with the batch being parsed and the one
/// being written, what an import holds in memory.
pub const QUEUED_BATCHES: usize = 8;
/// Rows between two progress reports.
pub const PROGRESS_EVERY: u64 = 1000;
/// Row errors listed in the report (all of them are counted in `failed`).
pub const MAX_REPORTED_ERRORS: usize = 1000;
/// The table's statistics are refreshed after batch 1, then each time the batch count grows by
/// this factor.
const ANALYZE_GROWTH: u64 = 4;
/// Bytes of the body parsed in one go (the network's chunks are gathered up to this size).
const PARSE_BYTES: usize = 64 * 1024;
/// Largest body accepted (bytes).
pub const MAX_IMPORT_BYTES: usize = 200 * 1024 * 1024;

/// A rejected row.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RowError {
    /// Physical line in the file (the header is line 1).
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
}

/// The outcome of an import (also each progress report, so far).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ImportReport {
    /// The list imported into.
    pub list_id: i64,
    /// Data rows read.
    pub rows: u64,
    /// New leads.
    pub imported: u64,
    /// Leads already in the list, updated with the row's non-empty values.
    pub updated: u64,
    /// Rows whose phone appeared earlier in the file (skipped).
    pub duplicates: u64,
    /// Rejected rows.
    pub failed: u64,
    /// The first rejected rows with line and reason.
    pub errors: Vec<RowError>,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be imported at all; nothing was written.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The body could not be read to its end.
    #[error("cannot read the upload: {0}")]
    Body(String),
    /// The body passed [`MAX_IMPORT_BYTES`].
    #[error("the file is larger than {MAX_IMPORT_BYTES} bytes")]
    TooLarge,
    /// A database failure (a list deleted meanwhile is `NotFound`).
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Written counts, shared by the two halves of an import: the writer adds to them, the reader
/// reports them with its progress.
type Written = std::sync::Mutex<store::BatchCounts>;

/// The reading half of an import: parses rows, counts the rejected ones and hands batches of
/// valid leads (no phone twice in a batch) to the writer.
struct Reader {
    parser: LeadCsvParser,
    report: ImportReport,
    /// Phones of the pending batch (earlier batches' phones are in the database).
    batch_phones: HashSet<String>,
    batch: Vec<LeadInput>,
    next_progress: u64,
}

impl Reader {
    /// Parses `bytes` (`None`: the file has ended); answers the batches that filled up, and at
    /// the end the last one.
    fn read(&mut self, bytes: Option<&[u8]>) -> Result<Vec<Vec<LeadInput>>, HeaderError> {
        let mut rows = Vec::new();
        match bytes {
            Some(bytes) => self.parser.feed(bytes, &mut rows)?,
            None => self.parser.finish(&mut rows)?,
        }
        let mut full = self.take(&mut rows);
        if bytes.is_none() && !self.batch.is_empty() {
            full.push(self.cut());
        }
        Ok(full)
    }

    /// Counts parsed rows; answers the batches that filled up.
    fn take(&mut self, rows: &mut Vec<ParsedRow>) -> Vec<Vec<LeadInput>> {
        let mut full = Vec::new();
        for row in rows.drain(..) {
            self.report.rows += 1;
            match row.lead {
                Err(reason) => {
                    self.report.failed += 1;
                    if self.report.errors.len() < MAX_REPORTED_ERRORS {
                        self.report.errors.push(RowError {
                            line: row.line,
                            reason,
                        });
                    }
                }
                Ok(lead) => {
                    if self.batch_phones.insert(lead.phone.clone()) {
                        self.batch.push(lead);
                    } else {
                        self.report.duplicates += 1;
                    }
                }
            }
            if self.batch.len() >= BATCH_ROWS {
                full.push(self.cut());
            }
        }
        full
    }

    /// The pending batch, leaving an empty one.
    fn cut(&mut self) -> Vec<LeadInput> {
        self.batch_phones.clear();
        std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS))
    }

    /// The counts so far (the rows read here, the leads the writer has committed), without the
    /// list of rejected rows.
    fn counts(&self, written: &Written) -> ImportReport {
        let written = *written.lock().unwrap_or_else(|e| e.into_inner());
        ImportReport {
            list_id: self.report.list_id,
            rows: self.report.rows,
            imported: written.inserted,
            updated: written.updated,
            duplicates: self.report.duplicates + written.duplicates,
            failed: self.report.failed,
            errors: Vec::new(),
        }
    }

    /// The whole report, once the writer has finished.
    fn into_report(mut self, written: &Written) -> ImportReport {
        ImportReport {
            errors: std::mem::take(&mut self.report.errors),
            ..self.counts(written)
        }
    }

    /// Whether a progress report is due.
    fn progress_due(&mut self) -> bool {
        if self.report.rows >= self.next_progress {
            self.next_progress = (self.report.rows / PROGRESS_EVERY + 1) * PROGRESS_EVERY;
            true
        } else {
            false
        }
    }
}

/// The writing half of an import: commits the batches in the order they come, one transaction
/// each, and refreshes the table's statistics as it grows.
async fn write_batches(
    db: &Db,
    tenant_id: i64,
    list_id: i64,
    stamp: chrono::NaiveDateTime,
    mut batches: mpsc::Receiver<Vec<LeadInput>>,
    written: &Written,
) -> Result<(), DbError> {
    let mut count = 0u64;
    let mut next_analyze = 1;
    while let Some(batch) = batches.recv().await {
        let counts = store::write_import_batch(db, tenant_id, list_id, stamp, batch.into()).await?;
        count += 1;
        if count == next_analyze {
            // At batches 1, 4, 16, 64…: the planner keeps up with a table the import grows.
            next_analyze *= ANALYZE_GROWTH;
            store::analyze_leads(db).await?;
        }
        let mut total = written.lock().unwrap_or_else(|e| e.into_inner());
        total.inserted += counts.inserted;
        total.updated += counts.updated;
        total.duplicates += counts.duplicates;
    }
    Ok(())
}

/// Imports the CSV `body` into list `list_id` of the tenant (the caller checked it is theirs),
/// reading numbers without a country code as numbers of `country`. `progress` is called about
/// every [`PROGRESS_EVERY`] rows with the counts so far (written rows only; the rejected rows
/// are listed in the answer alone).
pub async fn import_csv<S, B, E>(
    db: &Db,
    tenant_id: i64,
    list_id: i64,
    country: Id,
    body: S,
    mut progress: impl FnMut(&ImportReport),
) -> Result<ImportReport, ImportError>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: Display,
{
    let stamp = to_micros(chrono::Utc::now().naive_utc());
    let written = Written::default();
    // The file is parsed on one blocking thread while earlier batches commit (SQLite: on
    // another; PostgreSQL: in the server); a few batches queue between the two, so a commit
    // that takes long (an index merge) does not stop the parsing at once.
    let (batches, queued) = mpsc::channel(QUEUED_BATCHES);
    let writing = write_batches(db, tenant_id, list_id, stamp, queued, &written);
    let reading = async {
        let batches = batches; // dropped when reading ends: the writer then finishes
        let mut body = std::pin::pin!(body);
        let mut reader = Reader {
            parser: LeadCsvParser::new(country),
            report: ImportReport {
                list_id,
                ..ImportReport::default()
            },
            batch_phones: HashSet::with_capacity(BATCH_ROWS),
            batch: Vec::with_capacity(BATCH_ROWS),
            next_progress: PROGRESS_EVERY,
        };
        let mut received = 0usize;
        let mut pending = Vec::with_capacity(PARSE_BYTES);
        loop {
            // A body that breaks off or grows too large ends the import with that error, once
            // the rows that arrived before it are parsed and their whole batches written.
            let mut broken = None;
            let end = match body.next().await {
                Some(Ok(chunk)) => {
                    let chunk = chunk.as_ref();
                    received += chunk.len();
                    if received > MAX_IMPORT_BYTES {
                        broken = Some(ImportError::TooLarge);
                    } else {
                        pending.extend_from_slice(chunk);
                        if pending.len() < PARSE_BYTES {
                            continue;
                        }
                    }
                    false
                }
                Some(Err(e)) => {
                    broken = Some(ImportError::Body(e.to_string()));
                    false
                }
                None => true,
            };
            // Parsing (phone numbers above all) is CPU work: on the blocking pool, so neither
            // the batch committing meanwhile nor the arbiter's other tasks wait for it.
            let bytes = std::mem::replace(&mut pending, Vec::with_capacity(PARSE_BYTES));
            let (back, full) = on_blocking_pool(move || {
                let full = reader.read(Some(&bytes)).and_then(|mut full| {
                    if end {
                        full.extend(reader.read(None)?);
                    }
                    Ok(full)
                });
                (reader, full)
            })
            .await?;
            reader = back;
            for batch in full? {
                if batches.send(batch).await.is_err() {
                    // The writer stopped on an error, which is the import's outcome.
                    return Ok(reader);
                }
            }
            if reader.progress_due() {
                progress(&reader.counts(&written));
            }
            if let Some(err) = broken {
                return Err(err);
            }
            if end {
                return Ok(reader);
            }
        }
    };
    let (read, write) = futures_util::future::join(reading, writing).await;
    // A database failure first: the reader only stops early because of it.
    write?;
    let report = read?.into_report(&written);
    progress(&report);
    Ok(report)
}
