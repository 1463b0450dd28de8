//! The revocation feed (owned by the second server engineer; see ARCHITECTURE.md).
