/// `HH:MM:SS<sep>mmm`; hours grow past two digits instead of wrapping, and negative times
/// are written as zero because no subtitle format can express them.
pub(crate) fn format_timestamp(ms: i64, millis_separator: char) -> String {
    let ms = ms.max(0);
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let seconds = ms / 1000 % 60;
    let millis = ms % 1000;
    format!("{hours:02}:{minutes:02}:{seconds:02}{millis_separator}{millis:03}")
}

#[cfg(test)]
mod tests {
    use super::format_timestamp;

    #[test]
    fn formats_all_fields() {
        assert_eq!(format_timestamp(0, '.'), "00:00:00.000");
        assert_eq!(format_timestamp(3_723_045, '.'), "01:02:03.045");
        assert_eq!(format_timestamp(59_999, ','), "00:00:59,999");
        assert_eq!(format_timestamp(100 * 3_600_000 + 1, '.'), "100:00:00.001");
        assert_eq!(format_timestamp(-20, '.'), "00:00:00.000");
    }
}
