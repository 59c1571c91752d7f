//! handmatch-eval: the reference client. Enrols and identifies through the running
//! service, computes the same metrics as offline evaluation, writes the report, and
//! generates load (sampling the server's memory and descriptors for a soak).

pub mod client;
pub mod html_report;
pub mod load;
pub mod outputs;
pub mod process_samples;
pub mod run;
