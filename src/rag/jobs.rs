//! What the server keeps in memory of its ingest jobs: one runs at a time (ingests take the
//! index write lock in turn anyway), and each running or queued job has a flag its next batch
//! checks, so a cancel stops it between two batches. The jobs themselves are records in redb
//! (`store::rag_jobs`); the runner is `api::rag_jobs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

pub struct IngestJobs {
    turn: Arc<Semaphore>,
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
}

impl Default for IngestJobs {
    fn default() -> Self {
        IngestJobs { turn: Arc::new(Semaphore::new(1)), cancels: Mutex::new(HashMap::new()) }
    }
}

impl IngestJobs {
    /// A job's turn to run (one at a time).
    pub fn turn(&self) -> Arc<Semaphore> {
        self.turn.clone()
    }

    /// The cancel flag of a job this process is about to run.
    pub fn track(&self, id: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        if let Ok(mut cancels) = self.cancels.lock() {
            cancels.insert(id.to_string(), flag.clone());
        }
        flag
    }

    pub fn untrack(&self, id: &str) {
        if let Ok(mut cancels) = self.cancels.lock() {
            cancels.remove(id);
        }
    }

    /// Ask a queued or running job to stop; `false` when this process does not run it.
    pub fn cancel(&self, id: &str) -> bool {
        match self.cancels.lock().ok().and_then(|c| c.get(id).cloned()) {
            Some(flag) => {
                flag.store(true, Ordering::Release);
                true
            }
            None => false,
        }
    }
}
