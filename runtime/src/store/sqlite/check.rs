//! The check a store file passes before anything writes to it.
//!
//! Opening a damaged SQLite file read-write is not harmless: with a write-ahead log beside it,
//! SQLite reads pages from the log and checkpoints them over whatever the file holds, and a
//! malformed file is written to until a query trips over the damage. So the file and its log
//! are checked first, on a connection that cannot write: the headers here, then the schema and
//! `PRAGMA quick_check` through SQLite. A damaged store is refused and every file (the
//! database, `-wal` and `-shm`) is left as it was.
//!
//! The read-only connection must not write the `-shm` either, which SQLite does by default
//! (the first connection rebuilds the log's index there, even read-only). So:
//! - without a log (or with an empty one) and without `-shm`, nobody has the file open: it is
//!   read as `immutable`, which locks nothing and creates nothing;
//! - with `-shm`, it is opened `readonly_shm`: if a live host has the file open, its index is
//!   used read-only; if not (a killed host's leftovers), SQLite rebuilds the index in this
//!   process's memory from the log, so committed transactions in a hot log are checked too;
//! - with a log but no `-shm` (files copied aside), an empty `-shm` is created for the
//!   `readonly_shm` open (SQLite would create it anyway), and removed again if the store is
//!   refused.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::schema;
use crate::store::StoreError;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
const WAL_MAGIC: [u32; 2] = [0x377f_0682, 0x377f_0683];
const WAL_HEADER: u64 = 32;
/// How many problems `quick_check` reports at most (the message shows the first few).
const PROBLEMS: usize = 10;

/// How often a check that SQLite could not finish (not one that found damage) is tried: the
/// files may be changing under it, e.g. the last connection of another store handle closing.
const ATTEMPTS: u32 = 5;

/// A check that could not be finished, as opposed to one that found damage.
struct Unfinished(StoreError);

/// Checks the store at `path` (which may not exist yet) without writing to it.
pub(super) fn check(path: &Path) -> Result<(), StoreError> {
    let mut attempt = 1;
    loop {
        match check_once(path) {
            Ok(result) => return result,
            Err(Unfinished(e)) if attempt >= ATTEMPTS => return Err(e),
            Err(Unfinished(_)) => {
                std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
                attempt += 1;
            }
        }
    }
}

fn check_once(path: &Path) -> Result<Result<(), StoreError>, Unfinished> {
    let (uri, created_shm) = match check_files(path) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Ok(())),
        Err(e) => return Ok(Err(e)),
    };
    let result = check_with_sqlite(&uri, &path.display().to_string());
    if let Some(shm) = created_shm
        && !matches!(result, Ok(Ok(())))
    {
        let _ = std::fs::remove_file(shm);
    }
    result
}

/// Checks the headers; returns the URI to check the file through SQLite with (and the `-shm`
/// created for it, if any), or `None` when there is nothing to check (a new store).
fn check_files(path: &Path) -> Result<Option<(String, Option<PathBuf>)>, StoreError> {
    let shown = path.display().to_string();
    let wal = sibling(path, "-wal");
    let shm = sibling(path, "-shm");
    let io = |e: std::io::Error| StoreError::Backend(format!("cannot read `{shown}`: {e}"));
    let db_len = file_len(path).map_err(io)?;
    let wal_len = file_len(&wal).map_err(io)?;
    if db_len.unwrap_or(0) == 0 {
        if wal_len.unwrap_or(0) > 0 {
            // SQLite would start an empty database and delete the log.
            return Err(damaged(
                &shown,
                &format!(
                    "the file is {} but its write-ahead log `{}` is not empty",
                    if db_len.is_none() { "missing" } else { "empty" },
                    wal.display()
                ),
            ));
        }
        return Ok(None);
    }

    let mut header = [0u8; 100];
    let read = read_prefix(path, &mut header).map_err(io)?;
    if read < SQLITE_MAGIC.len() || &header[..SQLITE_MAGIC.len()] != SQLITE_MAGIC {
        return Err(StoreError::Backend(format!(
            "`{shown}` cannot be opened as a durable store: it is not a SQLite database (its \
             header is not SQLite's), or it is damaged; nothing was changed. If it was a durable \
             store, restore it from a backup; otherwise open another file, or move it \
             aside (with its `-wal` and `-shm` files, if any) to start with an empty store"
        )));
    }
    if read < header.len() {
        return Err(damaged(&shown, "it is shorter than a SQLite header"));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(damaged(&shown, "its header holds no valid page size"));
    }
    let db_len = db_len.unwrap_or(0);
    if db_len % page_size != 0 {
        return Err(damaged(
            &shown,
            &format!(
                "its size, {db_len} bytes, is not a whole number of {page_size}-byte pages: it \
                 was cut short or extended"
            ),
        ));
    }
    if let Some(len) = wal_len.filter(|&len| len > 0) {
        let mut wal_header = [0u8; WAL_HEADER as usize];
        let read = read_prefix(&wal, &mut wal_header).map_err(io)?;
        let magic =
            u32::from_be_bytes([wal_header[0], wal_header[1], wal_header[2], wal_header[3]]);
        if len < WAL_HEADER || read < wal_header.len() || !WAL_MAGIC.contains(&magic) {
            return Err(damaged(
                &shown,
                &format!(
                    "its write-ahead log `{}` is not a SQLite log",
                    wal.display()
                ),
            ));
        }
    }

    let shm_exists = file_len(&shm).map_err(io)?.is_some();
    let hot_log = wal_len.is_some_and(|len| len > 0);
    let (uri, created_shm) = if shm_exists && wal_len.is_some() {
        (format!("{}?mode=ro&readonly_shm=1", file_uri(path)), None)
    } else if hot_log {
        File::create_new(&shm).map_err(|e| {
            StoreError::Backend(format!(
                "cannot check `{shown}`: creating `{}` failed: {e}",
                shm.display()
            ))
        })?;
        (
            format!("{}?mode=ro&readonly_shm=1", file_uri(path)),
            Some(shm),
        )
    } else {
        (format!("{}?immutable=1", file_uri(path)), None)
    };
    Ok(Some((uri, created_shm)))
}

/// Opens the file read-only through `uri` and runs `quick_check` and the schema check.
fn check_with_sqlite(uri: &str, shown: &str) -> Result<Result<(), StoreError>, Unfinished> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // The schema is read once the file is known to be sound: `Err` holds its refusal.
    let run = || -> Result<Result<Vec<String>, StoreError>, rusqlite::Error> {
        let conn = Connection::open_with_flags(uri, flags)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let problems = conn
            .prepare(&format!("PRAGMA quick_check({PROBLEMS})"))?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        if problems == ["ok"]
            && let Err(refused) = schema::inspect(&conn, shown)
        {
            return Ok(Err(refused));
        }
        Ok(Ok(problems))
    };
    let problems = match run() {
        Ok(Ok(problems)) => problems,
        Ok(Err(refused)) => return Ok(Err(refused)),
        Err(e) => {
            return match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                    Ok(Err(damaged(shown, &e.to_string())))
                }
                _ => Err(Unfinished(StoreError::Backend(format!(
                    "cannot check `{shown}`: {e}"
                )))),
            };
        }
    };
    if problems == ["ok"] {
        return Ok(Ok(()));
    }
    let first: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
    let more = if problems.len() > 3 { "; …" } else { "" };
    Ok(Err(damaged(
        shown,
        &format!("SQLite's quick_check found: {}{more}", first.join("; ")),
    )))
}

fn damaged(shown: &str, what: &str) -> StoreError {
    StoreError::Backend(format!(
        "`{shown}` is damaged ({what}); nothing was written to it. Restore it from a backup, or \
         move it aside (with its `-wal` and `-shm` files, if any) to start with an empty store"
    ))
}

/// `path` with `suffix` appended to its file name, as SQLite names the log and its index.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn file_len(path: &Path) -> std::io::Result<Option<u64>> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads up to `buf.len()` bytes from the start of the file; returns how many it read.
fn read_prefix(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut file = File::open(path)?;
    let mut read = 0;
    while read < buf.len() {
        match file.read(&mut buf[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read)
}

/// A `file:` URI for `path` (absolute, percent-encoded), so query parameters can be added.
fn file_uri(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let bytes = absolute.as_os_str().as_encoded_bytes();
    let mut uri = String::from("file:");
    if !bytes.starts_with(b"/") {
        uri.push('/');
    }
    for &byte in bytes {
        match byte {
            b'\\' if cfg!(windows) => uri.push('/'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                uri.push(byte as char)
            }
            _ => uri.push_str(&format!("%{byte:02X}")),
        }
    }
    uri
}
