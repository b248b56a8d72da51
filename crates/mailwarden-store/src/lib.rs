//! mailwarden-store: the embedded event store (SQLite, retention by age and
//! size, indexed queries). Reserved for capability C2 ("Keep"); it holds no
//! code yet, and nothing in the workspace depends on it.
