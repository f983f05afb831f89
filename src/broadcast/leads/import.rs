//! CSV import into a lead list, streamed: records are parsed as the body's chunks arrive and
//! written in transactions of [`BATCH_ROWS`], so a 100,000-row file never sits in memory. One
//! batch is written while the next is read and parsed (on SQLite the write runs on a blocking
//! thread, so the two halves use both cores); a batch starts only once the one before it has
//! committed.
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
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures_util::{Stream, StreamExt};
use phonenumber::country::Id;
use serde::Serialize;
use utoipa::ToSchema;

use super::csv::{HeaderError, LeadCsvParser, ParsedRow};
use super::model::LeadInput;
use super::store;
use crate::db::{to_micros, Db, DbError};

/// Rows per write transaction (SQLite's write lock is held about 40 ms for one; each commit
/// also flushes a segment of the search index, so fewer commits mean less merging).
pub const BATCH_ROWS: usize = 5000;
/// Rows between two progress reports.
pub const PROGRESS_EVERY: u64 = 1000;
/// Row errors listed in the report (all of them are counted in `failed`).
pub const MAX_REPORTED_ERRORS: usize = 1000;
/// The table's statistics are refreshed after batch 1, then each time the batch count grows by
/// this factor.
const ANALYZE_GROWTH: u64 = 4;
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

/// A batch's write, under way.
type Writing<'a> = Pin<Box<dyn Future<Output = Result<store::BatchCounts, DbError>> + 'a>>;

/// An import in progress.
struct Importer<'a> {
    db: &'a Db,
    tenant_id: i64,
    report: ImportReport,
    /// When the import started: the mark of every lead it writes.
    stamp: chrono::NaiveDateTime,
    /// Phones of the pending batch (earlier batches' phones are in the database).
    batch_phones: HashSet<String>,
    batch: Vec<LeadInput>,
    next_progress: u64,
    /// Batches written, and the count at which the table's statistics are refreshed next.
    batches: u64,
    next_analyze: u64,
    /// The batch being written while the next is parsed.
    writing: Option<Writing<'a>>,
}

impl<'a> Importer<'a> {
    /// Counts parsed rows and writes full batches.
    async fn take(&mut self, rows: &mut Vec<ParsedRow>) -> Result<(), DbError> {
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
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Writes the pending rows: waits for the batch being written, then starts this one and
    /// returns while it is written, so the next rows are parsed meanwhile.
    async fn flush(&mut self) -> Result<(), DbError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.settle().await?;
        let rows = Arc::new(std::mem::replace(
            &mut self.batch,
            Vec::with_capacity(BATCH_ROWS),
        ));
        self.batch_phones.clear();
        let mut write = Box::pin(store::write_import_batch(
            self.db,
            self.tenant_id,
            self.report.list_id,
            self.stamp,
            rows,
        ));
        // Polled once, the batch is on its way (SQLite: on its blocking thread).
        match std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
            Poll::Ready(counts) => self.count(counts?).await,
            Poll::Pending => {
                self.writing = Some(write);
                Ok(())
            }
        }
    }

    /// Waits for the batch being written, if any, and counts it.
    async fn settle(&mut self) -> Result<(), DbError> {
        match self.writing.take() {
            Some(write) => {
                let counts = write.await?;
                self.count(counts).await
            }
            None => Ok(()),
        }
    }

    /// Counts a committed batch; refreshes the table's statistics when due.
    async fn count(&mut self, counts: store::BatchCounts) -> Result<(), DbError> {
        self.batches += 1;
        if self.batches == self.next_analyze {
            // At batches 1, 4, 16, 64…: the planner keeps up with a table the import grows.
            self.next_analyze *= ANALYZE_GROWTH;
            store::analyze_leads(self.db).await?;
        }
        self.report.imported += counts.inserted;
        self.report.updated += counts.updated;
        self.report.duplicates += counts.duplicates;
        Ok(())
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

/// Imports the CSV `body` into list `list_id` of the tenant (the caller checked it is theirs),
/// reading numbers without a country code as numbers of `country`. `progress` is called about
/// every [`PROGRESS_EVERY`] rows with the counts so far (written rows only).
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
    let mut parser = LeadCsvParser::new(country);
    let mut importer = Importer {
        db,
        tenant_id,
        report: ImportReport {
            list_id,
            ..ImportReport::default()
        },
        stamp: to_micros(chrono::Utc::now().naive_utc()),
        batch_phones: HashSet::with_capacity(BATCH_ROWS),
        batch: Vec::with_capacity(BATCH_ROWS),
        next_progress: PROGRESS_EVERY,
        batches: 0,
        next_analyze: 1,
        writing: None,
    };
    let read = read_all(body, &mut parser, &mut importer, &mut progress).await;
    // Whatever happened, the batch being written is waited for: nothing of this import is
    // written after it returns.
    let settled = importer.settle().await;
    read?;
    settled?;
    progress(&importer.report);
    Ok(importer.report)
}

/// Feeds the whole body to the parser and the importer; the last batch may still be being
/// written when this returns.
async fn read_all<S, B, E>(
    body: S,
    parser: &mut LeadCsvParser,
    importer: &mut Importer<'_>,
    progress: &mut impl FnMut(&ImportReport),
) -> Result<(), ImportError>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: Display,
{
    let mut body = std::pin::pin!(body);
    let mut rows = Vec::new();
    let mut received = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ImportError::Body(e.to_string()))?;
        let chunk = chunk.as_ref();
        received += chunk.len();
        if received > MAX_IMPORT_BYTES {
            return Err(ImportError::TooLarge);
        }
        parser.feed(chunk, &mut rows)?;
        importer.take(&mut rows).await?;
        if importer.progress_due() {
            progress(&importer.report);
        }
    }
    parser.finish(&mut rows)?;
    importer.take(&mut rows).await?;
    importer.flush().await?;
    Ok(())
}
