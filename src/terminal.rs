//! The one progress bar drawn on the terminal, if any: what prints while it is drawn
//! lifts it first ([`above_the_bar`]), and an exit or a Ctrl-C clears it. Shared by
//! `output` (warnings) and `progress` (the bar), which otherwise do not know each other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use indicatif::ProgressBar;

/// The bar being drawn, if any, so a second Ctrl-C can clear it before exiting at once.
static ACTIVE_BAR: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();

/// Whether the bar has been drawn at least once (the cursor sits past its last column).
static DRAWN: AtomicBool = AtomicBool::new(false);

/// The bar now drawn (or none, when it is cleared).
pub fn set_active(bar: Option<ProgressBar>) {
    if bar.is_none() {
        DRAWN.store(false, Ordering::SeqCst);
    }
    *ACTIVE_BAR
        .get_or_init(Default::default)
        .lock()
        .expect("not poisoned") = bar;
}

/// The bar has been drawn: the cursor now sits past its last column.
pub fn mark_drawn() {
    DRAWN.store(true, Ordering::SeqCst);
}

/// Ctrl-C on a terminal echoes "^C" where the cursor is, and indicatif leaves the cursor
/// past the bar's last column, so the echo wraps onto a new line and every later redraw
/// (and the final clear) would leave the bar's first line behind. Lifts the bar, clears
/// the extra line, and draws it again where it was.
pub fn after_keyboard_interrupt() {
    if !DRAWN.load(Ordering::SeqCst) || !ctrl_c_is_echoed() {
        return;
    }
    if let Some(bar) = ACTIVE_BAR
        .get()
        .and_then(|m| m.lock().ok().and_then(|b| b.clone()))
    {
        bar.suspend(|| eprint!("\x1b[1A\r\x1b[2K"));
    }
}

/// The terminal echoes control characters (ECHO and ECHOCTL, the Linux default).
fn ctrl_c_is_echoed() -> bool {
    use rustix::termios::LocalModes;
    rustix::termios::tcgetattr(std::io::stderr()).is_ok_and(|t| {
        t.local_modes
            .contains(LocalModes::ECHO | LocalModes::ECHOCTL | LocalModes::ISIG)
    })
}

/// Clears the terminal display now (before `std::process::exit`, which skips drops).
pub fn clear_before_exit() {
    if let Some(bar) = ACTIVE_BAR.get().and_then(|m| m.lock().ok()?.take()) {
        bar.finish_and_clear();
    }
}

/// Runs `print` with the bar lifted, so a warning printed mid-run is not drawn over.
pub fn above_the_bar(print: impl FnOnce()) {
    let bar = ACTIVE_BAR
        .get()
        .and_then(|m| m.lock().ok().and_then(|b| b.clone()));
    match bar {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}
