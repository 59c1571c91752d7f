//! The on-disk form of an embedding: its f32 values, little-endian, back to back. Both backends
//! store the same bytes, so a database can move between them and between machines.

/// Bytes per stored value.
pub(crate) const VALUE_BYTES: usize = 4;

pub(crate) fn encode(embedding: &[f32]) -> Vec<u8> {
    embedding.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Fails, saying why, on a blob no [`encode`] call can have produced.
pub(crate) fn decode(blob: &[u8]) -> Result<Vec<f32>, String> {
    if blob.is_empty() {
        return Err("embedding blob is empty".into());
    }
    if blob.len() % VALUE_BYTES != 0 {
        return Err(format!(
            "embedding blob of {} bytes is not a whole number of f32 values",
            blob.len()
        ));
    }
    Ok(blob
        .chunks_exact(VALUE_BYTES)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bit_exact() {
        let values = [
            0.0,
            -0.0,
            1.0,
            -1.5e-42,
            f32::MIN_POSITIVE,
            0.123_456_79,
            f32::MAX,
        ];
        let blob = encode(&values);
        assert_eq!(blob.len(), values.len() * VALUE_BYTES);
        let back = decode(&blob).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&values));
    }

    #[test]
    fn little_endian_on_disk() {
        assert_eq!(encode(&[1.0]), vec![0x00, 0x00, 0x80, 0x3f]);
    }

    #[test]
    fn rejects_blobs_encode_cannot_produce() {
        assert!(decode(&[]).unwrap_err().contains("empty"));
        assert!(decode(&[0; 7]).unwrap_err().contains("7 bytes"));
    }
}
