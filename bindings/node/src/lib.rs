//! packhost for Node (placeholder).
