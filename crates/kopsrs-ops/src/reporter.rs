//! How an operation tells its caller what is going on while it runs: the CLI prints lines
//! (and a progress bar on a terminal), the controller records events.

use kopsrs_engine::{Change, Event, Plan};

/// A callback told of each change's progress (started, retried, done, failed).
pub type Progress = Box<dyn FnMut(&Change, Event) + Send>;

/// Progress of an operation. Every method has a default that drops the report, so a caller
/// implements what it shows.
pub trait Reporter: Send + Sync {
    /// One line of progress ("group nodes: draining node ...").
    fn say(&self, line: &str);

    /// A warning: something the user should know that does not stop the operation.
    fn warn(&self, warning: &str, hint: Option<&str>);

    /// The plan an update made, before anything is applied (`applying`: it is applied next).
    fn planned(&self, cluster: &str, plan: &Plan, applying: bool) {
        let _ = (cluster, plan, applying);
    }

    /// A callback for the progress of `total` changes being applied or deleted.
    fn changes(&self, total: usize) -> Progress {
        let _ = total;
        Box::new(|_, _| {})
    }

    /// What happened to one object of `manifests diff/apply/delete` (`address`:
    /// `Deployment.apps web -n team`), as it happens: a long apply shows its way.
    fn object(&self, address: &str, event: &ObjectEvent) {
        let _ = (address, event);
    }
}

/// What happened to one object of a manifests verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectEvent {
    /// `diff`: the object's unified diff (configuration or live against the dry run).
    Diff(String),
    /// `diff`: the server's dry run refused the object.
    Refused(String),
    /// `apply`: `created`, `configured` (with `dry_run`: would be).
    Applied {
        /// `created` or `configured`.
        what: &'static str,
        /// A server dry run.
        dry_run: bool,
    },
    /// `apply --dry-run`: a custom resource whose definition the configuration applies first.
    CreatedAfterDefinition,
    /// `apply --dry-run`: an object in a namespace the configuration creates first.
    CreatedAfterNamespace(String),
    /// `apply`: the API does not serve the object's `apiVersion`.
    NotServed(String),
    /// The API refused the object (the error).
    Failed(String),
    /// Garbage collection kept a tagged object (why).
    Kept(&'static str),
    /// Garbage collection deleted a tagged object the configuration no longer renders.
    Garbage {
        /// A server dry run.
        dry_run: bool,
    },
    /// `delete`: deleted.
    Deleted {
        /// A server dry run.
        dry_run: bool,
    },
    /// `delete`: not in the cluster.
    NotFound,
    /// `delete`: the API does not serve the object's kind.
    KindNotServed,
}

/// A reporter that keeps nothing (tests, and callers that only want the report).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn say(&self, _: &str) {}
    fn warn(&self, _: &str, _: Option<&str>) {}
}

/// A reporter that records what it is told, in order (tests; a controller's event log).
#[derive(Debug, Default)]
pub struct Recorded(pub std::sync::Mutex<Vec<String>>);

impl Recorded {
    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().expect("lines").clone()
    }
}

impl Reporter for Recorded {
    fn say(&self, line: &str) {
        self.0.lock().expect("lines").push(line.to_string());
    }
    fn warn(&self, warning: &str, _: Option<&str>) {
        self.0
            .lock()
            .expect("lines")
            .push(format!("warning: {warning}"));
    }
}
