//! Ctrl-C and SIGTERM: the first asks the upload to stop cleanly, a second ends the process at once.

use crate::failure::EXIT_CANCELLED;

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// Ctrl-C (SIGINT).
    CtrlC,
    /// SIGTERM (a service manager, `kill`).
    Terminate,
}

impl Interrupt {
    /// How to name it to a person.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::CtrlC => "Ctrl-C",
            Self::Terminate => "SIGTERM",
        }
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn interrupted() -> Interrupt {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => Interrupt::CtrlC,
                _ = term.recv() => Interrupt::Terminate,
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                Interrupt::CtrlC
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Interrupt::CtrlC
    }
}

/// After a first interrupt, waits for a second one and exits at once, for a person who does not want
/// to wait for in-flight parts to stop.
pub(crate) fn exit_on_second_interrupt() {
    tokio::spawn(async {
        let signal = interrupted().await;
        eprintln!(
            "{} again: exiting now; the checkpoint holds every part acknowledged so far",
            signal.name()
        );
        std::process::exit(i32::from(EXIT_CANCELLED));
    });
}
