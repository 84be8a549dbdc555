//! Every log line of the test process, at every level and from every crate, kept for the test
//! to read.

use std::sync::{Mutex, OnceLock};

/// The lines logged so far, as `LEVEL target message`.
pub struct CapturedLogs(Mutex<Vec<String>>);

impl log::Log for CapturedLogs {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        self.0.lock().unwrap().push(format!(
            "{} {} {}",
            record.level(),
            record.target(),
            record.args()
        ));
    }
    fn flush(&self) {}
}

impl CapturedLogs {
    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Installs the capturing logger (once per test binary, at trace level) and returns it.
pub fn captured_logs() -> &'static CapturedLogs {
    static LOGS: OnceLock<&'static CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logger: &'static CapturedLogs =
            Box::leak(Box::new(CapturedLogs(Mutex::new(Vec::new()))));
        log::set_logger(logger).expect("the only logger");
        log::set_max_level(log::LevelFilter::Trace);
        logger
    })
}
