//! What rollback does to each object: delete what we created, restore what we
//! overwrote, or remove a backup whose write never landed — only while the target still
//! holds what we wrote. Writes a crash left unrecorded become work too.

use std::collections::HashSet;

use crate::error::StoreError;
use crate::manifest::{ManifestSet, ObjectRecord, Status};
use crate::object::Expect;
use crate::target::Target;
use crate::transfer::holds_what_we_wrote;
use crate::transfer::intent::written_under;

/// Why rollback left an object it was about to restore over.
pub(super) const WRITTEN_BY_OTHERS_IN_ROLLBACK: &str =
    "written by someone else during the rollback";

/// What rollback does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Delete,
    Restore,
    /// A backup was made but the write it prepared never landed: remove the backup.
    RemoveBackup,
}

impl Action {
    pub fn for_record(rec: &ObjectRecord) -> Action {
        if rec.backup_key.is_some() {
            Action::Restore
        } else {
            Action::Delete
        }
    }
}

/// Writes a crash left without an outcome record, turned into rollback work: what is at
/// the key now is ours if an unanswered intent announced exactly it. Such a key is
/// undone as if its record said `copied` with the announced bytes.
pub(super) async fn unfinished_work(
    target: &dyn Target,
    set: &ManifestSet,
) -> Result<Vec<(ObjectRecord, Action)>, StoreError> {
    let mut work = Vec::new();
    let mut unfinished: Vec<_> = set.unfinished.iter().collect();
    unfinished.sort_by(|a, b| a.0.cmp(b.0));
    for (source_key, intents) in unfinished {
        let last = intents.last().expect("at least one intent per key");
        let standing = set.get(source_key)?;
        let prev = standing.as_ref().filter(|r| r.status == Status::Copied);
        let backup = intents
            .iter()
            .find_map(|i| i.backup_key.clone())
            .or_else(|| prev.and_then(|p| p.backup_key.clone()));
        let current = target.head(&last.target_key).await?;
        let ours = current
            .as_ref()
            .is_some_and(|obj| written_under(obj, intents));
        let announced = intents
            .iter()
            .rev()
            .find(|i| i.size.is_some())
            .unwrap_or(last);
        let mut rec = ObjectRecord::new(
            source_key,
            &last.target_key,
            announced.size.unwrap_or(0),
            Status::Copied,
        );
        rec.sha256 = announced.sha256.clone();
        rec.target_checksum = announced.checksum.clone();
        rec.target_crc64nvme = announced.crc64nvme.clone();
        rec.run_id = last.run_id.clone();
        rec.backup_key = backup.clone();
        if let Some(p) = &standing {
            rec.row = p.row.clone();
        }
        if ours {
            rec.target_etag = current.as_ref().and_then(|o| o.etag.clone());
            work.push((rec.clone(), Action::for_record(&rec)));
        } else if current.is_none() && backup.is_some() {
            // Gone from its key, but we hold a backup of what was there: put it back.
            work.push((rec, Action::Restore));
        } else if prev.is_none() {
            if let Some(b) = intents.iter().find_map(|i| i.backup_key.clone()) {
                rec.backup_key = Some(b);
                work.push((rec, Action::RemoveBackup));
            }
        }
    }
    Ok(work)
}

pub(super) async fn undo(
    target: &dyn Target,
    rec: &ObjectRecord,
    action: Action,
    dry_run: bool,
) -> Result<(Status, String), StoreError> {
    if action == Action::RemoveBackup {
        let backup = rec.backup_key.as_deref().expect("a backup to remove");
        if target.head(backup).await?.is_none() {
            return Ok((Status::RolledBack, "never written; no backup left".into()));
        }
        if !dry_run {
            target.delete(backup).await?;
        }
        return Ok((
            Status::RolledBack,
            format!("never written; removed its backup {backup}"),
        ));
    }
    let current = target.head(&rec.target_key).await?;
    let ours = current.as_ref().map(|obj| holds_what_we_wrote(obj, rec));
    if ours == Some(false) {
        return Ok((
            Status::Kept,
            "changed since the migration; left alone (delete or restore it by hand if you are sure)".into(),
        ));
    }
    match action {
        Action::Delete if current.is_none() => Ok((Status::RolledBack, "already gone".into())),
        Action::Delete => {
            if !dry_run {
                target.delete(&rec.target_key).await?;
            }
            Ok((Status::RolledBack, "deleted".into()))
        }
        Action::RemoveBackup => unreachable!("handled above"),
        Action::Restore => {
            let backup = rec.backup_key.as_deref().expect("restore has a backup");
            if target.head(backup).await?.is_none() {
                return Ok((
                    Status::Kept,
                    format!("its backup {backup} is gone, so the original cannot be restored"),
                ));
            }
            if !dry_run {
                // Only over what we just found ours (or the empty key we found): an
                // application write since that look is refused, not replaced.
                let expect = match current.and_then(|o| o.etag) {
                    Some(etag) => Expect::Etag(etag),
                    None if ours.is_none() => Expect::Absent,
                    None => Expect::Anything,
                };
                match target.copy_if(backup, &rec.target_key, &expect).await {
                    Err(StoreError::Changed(_)) => {
                        return Ok((
                            Status::Kept,
                            format!(
                                "{WRITTEN_BY_OTHERS_IN_ROLLBACK}; left alone, and its backup {backup} kept (restore it by hand if you are sure)"
                            ),
                        ))
                    }
                    other => other?,
                }
                target.delete(backup).await?;
            }
            Ok((Status::RolledBack, format!("restored from {backup}")))
        }
    }
}

/// Everything to undo, read from disk as it is done: each `copied` record, with a
/// crash's unrecorded writes (`unfinished`, from [`unfinished_work`]) in place of the
/// record of the same key, and without the keys in `left` (rows left alone). Objects an
/// earlier rollback `kept` are looked at again, so a resumed rollback still reports (and
/// exits 1 for) what it leaves alone, and deletes one that holds our bytes again.
pub(super) fn all_work<'a>(
    set: &'a ManifestSet,
    unfinished: Vec<(ObjectRecord, Action)>,
    left: &'a HashSet<String>,
) -> impl Iterator<Item = Result<(ObjectRecord, Action), StoreError>> + 'a {
    let taken: HashSet<String> = unfinished
        .iter()
        .map(|(r, _)| r.source_key.clone())
        .collect();
    set.records()
        .filter_map(move |r| match r {
            Err(e) => Some(Err(StoreError::from(e))),
            Ok(r) if !matches!(r.status, Status::Copied | Status::Kept) => None,
            Ok(r) if taken.contains(&r.source_key) => None,
            Ok(r) => {
                let action = Action::for_record(&r);
                Some(Ok((r, action)))
            }
        })
        .chain(unfinished.into_iter().map(Ok))
        .filter(move |w| !w.as_ref().is_ok_and(|(r, _)| left.contains(&r.source_key)))
}
