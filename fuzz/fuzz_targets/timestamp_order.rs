//! Fuzz target: three `|`-separated strings through the timestamp ordering.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    messaging_stream_fuzz::check_order_bytes(data);
});
