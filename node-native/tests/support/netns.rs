//! netns harness (filled in separately)
