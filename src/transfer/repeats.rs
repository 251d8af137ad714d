//! A refusal that repeats is fatal (SPEC "A refusal that repeats"): when the target
//! rejects the same kind of request with the same error for several objects in a row,
//! every object after them would be read and uploaded only to learn the same answer —
//! on a real migration, hours of uploads for nothing. So the third one in a row stops the
//! run (exit 3) with one message naming the request, what it carried and the answer.
//! "In a row" is per kind of request: a PutObject that succeeds says nothing about
//! CompleteMultipartUpload, so small objects copied between large ones that all fail
//! do not hide the repetition.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Rejection, StoreError};

/// How many objects in a row a refusal must repeat on before the run stops.
pub const IN_A_ROW: usize = 3;

/// The requests a successful multipart upload made, and a single PUT's.
pub const MULTIPART: &[&str] = &[
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
];
pub const SINGLE: &[&str] = &["PutObject"];

#[derive(Default)]
pub struct Repeats {
    /// Per kind of request: the last refusal's code and the objects it hit in a row.
    streaks: Mutex<HashMap<String, (String, Vec<String>)>>,
}

impl Repeats {
    /// These requests were accepted for an object: their streaks end.
    pub fn accepted(&self, requests: &[&str]) {
        let mut streaks = self.streaks.lock().expect("not poisoned");
        for r in requests {
            streaks.remove(*r);
        }
    }

    /// `object`'s request was rejected. Returns the error that stops the run when this is
    /// the third object in a row rejected this way.
    pub fn rejected(&self, object: &str, r: &Rejection) -> Option<StoreError> {
        let mut streaks = self.streaks.lock().expect("not poisoned");
        let streak = streaks
            .entry(r.request.clone())
            .or_insert_with(|| (r.code.clone(), Vec::new()));
        if streak.0 != r.code {
            *streak = (r.code.clone(), Vec::new());
        }
        if !streak.1.iter().any(|o| o == object) {
            streak.1.push(object.to_string());
        }
        (streak.1.len() >= IN_A_ROW).then(|| StoreError::Fatal(stop_message(r, &streak.1)))
    }
}

/// One message with everything an operator needs: the request, the objects, what was
/// sent, the target's answer, what was done, and what to do.
fn stop_message(r: &Rejection, objects: &[String]) -> String {
    let sent = if r.sent.is_empty() {
        String::new()
    } else {
        format!(" It sent {}.", r.sent)
    };
    format!(
        "the target refused {request} the same way for {n} objects in a row ({objects}): {code} \
         (HTTP {status}); the last answer was: {words}.{sent} The run stopped: no new object \
         was started, open multipart uploads were aborted and everything finished is \
         recorded. {advice}",
        request = r.request,
        n = objects.len(),
        objects = objects.join(", "),
        code = r.code,
        status = r.status,
        words = r.words,
        advice = advice(r),
    )
}

/// What to do next, for the refusals we know.
fn advice(r: &Rejection) -> &'static str {
    match r.request.as_str() {
        "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload" => {
            "R2 accepts multipart uploads checked by a full-object CRC64NVME (since July \
             2025); an S3-compatible store that refuses them can still be written with \
             --multipart-checksum md5 (each part's Content-MD5, the multipart ETag checked \
             after Complete). Check that the endpoint is the one you meant, then run the same \
             command again to resume"
        }
        _ => {
            "Check that the endpoint is R2 (or accepts what R2 accepts), and the settings named \
             above (storage class, --header-upload); then run the same command again to resume"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(request: &str, code: &str) -> Rejection {
        Rejection {
            request: request.into(),
            code: code.into(),
            status: 400,
            words: format!("{request} r2://b/k: {code}"),
            sent: "x-amz-checksum-type: FULL_OBJECT".into(),
        }
    }

    #[test]
    fn the_third_object_in_a_row_stops_the_run() {
        let repeats = Repeats::default();
        let complete = rejection("CompleteMultipartUpload", "InvalidRequest");
        assert!(repeats.rejected("a", &complete).is_none());
        assert!(repeats.rejected("b", &complete).is_none());
        // Small objects copied meanwhile do not break the streak of the large ones.
        repeats.accepted(SINGLE);
        let stop = repeats.rejected("c", &complete).expect("fatal");
        let text = stop.to_string();
        assert!(stop.is_fatal());
        for part in [
            "CompleteMultipartUpload",
            "(a, b, c)",
            "InvalidRequest",
            "HTTP 400",
            "FULL_OBJECT",
            "--multipart-checksum",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }

    #[test]
    fn a_success_or_another_answer_starts_over() {
        let repeats = Repeats::default();
        let complete = rejection("CompleteMultipartUpload", "InvalidRequest");
        repeats.rejected("a", &complete);
        repeats.rejected("b", &complete);
        repeats.accepted(MULTIPART);
        assert!(repeats.rejected("c", &complete).is_none());
        assert!(repeats
            .rejected("d", &rejection("CompleteMultipartUpload", "BadDigest"))
            .is_none());
        assert!(repeats.rejected("e", &complete).is_none());
        // The same object twice is one object.
        assert!(repeats.rejected("e", &complete).is_none());
        assert!(repeats.rejected("f", &complete).is_none());
        assert!(repeats.rejected("g", &complete).is_some());
    }
}
