//! `mediaflow serve` in process: the REST API and the scheduler, on both backends.

mod api;
mod common;
mod schedules;
