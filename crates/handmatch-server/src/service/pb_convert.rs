//! Translating between `handmatch.v1` messages and the service's own types, naming the
//! field in every refusal.

use super::error::ServiceError;
use super::fingerprint::ImageFingerprints;
use super::matcher::{RequestImage, Timings};
use super::operating_point::{Decision, OperatingPoint};
use crate::store::{HandSide, TemplateRecord};
use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;

fn aspect(value: i32, field: &str) -> Result<Option<Aspect>, ServiceError> {
    match pb::Aspect::try_from(value) {
        Ok(pb::Aspect::Unspecified) => Ok(None),
        Ok(pb::Aspect::Dorsal) => Ok(Some(Aspect::Dorsal)),
        Ok(pb::Aspect::Palmar) => Ok(Some(Aspect::Palmar)),
        Err(_) => Err(ServiceError::invalid(format!(
            "{field} has the unknown value {value}"
        ))),
    }
}

fn side(value: i32, field: &str) -> Result<HandSide, ServiceError> {
    match pb::Side::try_from(value) {
        Ok(pb::Side::Unknown) => Ok(HandSide::Unknown),
        Ok(pb::Side::Left) => Ok(HandSide::Left),
        Ok(pb::Side::Right) => Ok(HandSide::Right),
        Err(_) => Err(ServiceError::invalid(format!(
            "{field} has the unknown value {value}"
        ))),
    }
}

fn to_pb_aspect(a: Aspect) -> pb::Aspect {
    match a {
        Aspect::Dorsal => pb::Aspect::Dorsal,
        Aspect::Palmar => pb::Aspect::Palmar,
    }
}

fn to_pb_side(s: HandSide) -> pb::Side {
    match s {
        HandSide::Unknown => pb::Side::Unknown,
        HandSide::Left => pb::Side::Left,
        HandSide::Right => pb::Side::Right,
    }
}

pub(super) fn images(list: Vec<pb::Image>) -> Result<Vec<RequestImage>, ServiceError> {
    list.into_iter()
        .enumerate()
        .map(|(i, img)| {
            Ok(RequestImage {
                aspect: aspect(img.aspect, &format!("images[{i}].aspect"))?,
                side: side(img.side, &format!("images[{i}].side"))?,
                data: img.data,
            })
        })
        .collect()
}

pub(super) fn gallery_aspect(value: i32) -> Result<Aspect, ServiceError> {
    Ok(aspect(value, "gallery_aspect")?.unwrap_or(Aspect::Palmar))
}

pub(super) fn operating_point(value: i32) -> Result<Option<OperatingPoint>, ServiceError> {
    match pb::OperatingPoint::try_from(value) {
        Ok(pb::OperatingPoint::Unspecified) => Ok(None),
        Ok(pb::OperatingPoint::Fpir1pct) => Ok(Some(OperatingPoint::Fpir1Pct)),
        Ok(pb::OperatingPoint::Fpir01pct) => Ok(Some(OperatingPoint::Fpir01Pct)),
        Err(_) => Err(ServiceError::invalid(format!(
            "operating_point: unknown value {value}"
        ))),
    }
}

pub(super) fn decision(d: Decision) -> pb::Decision {
    pb::Decision {
        operating_point: match d.point {
            OperatingPoint::Fpir1Pct => pb::OperatingPoint::Fpir1pct,
            OperatingPoint::Fpir01Pct => pb::OperatingPoint::Fpir01pct,
        } as i32,
        threshold: d.threshold,
        is_match: d.is_match,
        subject_id: d.best.subject_id,
        score: d.best.score,
    }
}

pub(super) fn timings(t: Timings) -> pb::Timings {
    pb::Timings {
        decode_ms: t.decode.as_secs_f64() * 1e3,
        embed_ms: t.embed.as_secs_f64() * 1e3,
        search_ms: t.search.as_secs_f64() * 1e3,
    }
}

pub(super) fn template_info(
    t: TemplateRecord,
    fingerprints: &ImageFingerprints,
) -> pb::TemplateInfo {
    pb::TemplateInfo {
        template_id: t.template_id,
        aspect: to_pb_aspect(t.aspect) as i32,
        side: to_pb_side(t.side) as i32,
        image_fingerprint: fingerprints.of(&t.image_sha256),
        created_at_ms: t.created_at_ms,
    }
}
