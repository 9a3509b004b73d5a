//! `prescreen ingest`: runs the reference report receiver until killed.

use std::path::{Path, PathBuf};

use anyhow::Result;
use prescreen::ingest::{self, Receiver};

/// The arguments of `prescreen ingest`.
#[derive(clap::Args)]
pub(super) struct IngestArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Folder the reports are stored in.
    #[arg(long)]
    dir: PathBuf,
}

impl IngestArgs {
    /// Receives reports as the arguments say.
    pub(super) fn run(self) -> Result<()> {
        let Self { listen, dir } = self;
        ingest(&listen, &dir)
    }
}

fn ingest(listen: &str, dir: &Path) -> Result<()> {
    let receiver = Receiver::start(listen, dir, Some(ingest::print_new_reports(dir)))?;
    eprintln!(
        "receiving reports at {}, storing them in {} (Ctrl-C to stop)",
        receiver.url(),
        dir.display()
    );
    loop {
        std::thread::park();
    }
}
