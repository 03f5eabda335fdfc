#![forbid(unsafe_code)]
//! triaged (overview written as the modules land).

pub mod diag;
pub mod guard;
pub mod parse;
pub mod score;
