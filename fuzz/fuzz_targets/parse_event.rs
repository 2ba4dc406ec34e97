//! Fuzz target: a Lambda event as arbitrary bytes through the record parser and the coalescing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    messaging_stream_fuzz::check_event(data);
});
