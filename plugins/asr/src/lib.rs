//! `mediaflow-asr`: whisper.cpp speech-to-text for mediaflow. The binary serves
//! [`plugin::Transcribe`] (`audio.transcribe`) over the plugin protocol; [`standalone`] runs
//! one transcription from the command line (for trying a model on a file, and for the
//! benchmark).

pub mod align;
pub mod audio;
pub mod cues;
pub mod plugin;
pub mod standalone;
pub mod subtitles;
pub mod transcribe;
pub mod vad;
pub mod windows;
