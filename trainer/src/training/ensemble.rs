//! `ensemble = "PARTS[:WEIGHT];…"`: several heads of the configured kind, each fitted on
//! its own feature parts (`all`, or hand feature groups joined by `+`, which must be
//! neighbours in the backbone's column order), combined into one `EnsembleHead` whose
//! cosine is the weighted mean of the members' cosines. Members on the same parts differ
//! by seed (member i trains with seed + i), so `all;all;all` is a seed ensemble.

use std::collections::BTreeSet;

use handmatch_core::metrics::evaluate_protocols;
use handmatch_export::head::{EnsembleHead, EnsembleMember, Head};

use super::config::FitConfig;
use super::data::{embed_cached, rows_of};
use super::error::FitError;
use super::one_head::fit_one;
use super::outcome::{EpochRecord, FitOutcome};
use crate::extract::FeatureCache;

#[derive(Debug, Clone, PartialEq)]
pub struct MemberSpec {
    /// `None`: every column.
    pub parts: Option<Vec<String>>,
    pub weight: f32,
}

pub fn parse_members(spec: &str) -> Result<Vec<MemberSpec>, FitError> {
    let bad = |m: &str, why: &str| FitError::Data(format!("ensemble member `{m}`: {why}"));
    let members: Vec<MemberSpec> = spec
        .split(';')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            let (parts, weight) = match m.rsplit_once(':') {
                Some((p, w)) => (p, w.trim().parse().map_err(|_| bad(m, "bad weight"))?),
                None => (m, 1.0),
            };
            if !(weight > 0.0f32 && weight.is_finite()) {
                return Err(bad(m, "the weight must be positive"));
            }
            let parts = match parts.trim() {
                "all" => None,
                list => Some(list.split('+').map(|p| p.trim().to_string()).collect()),
            };
            Ok(MemberSpec { parts, weight })
        })
        .collect::<Result<_, _>>()?;
    if members.len() < 2 {
        return Err(FitError::Data(format!(
            "ensemble `{spec}`: an ensemble needs at least two members"
        )));
    }
    Ok(members)
}

/// The columns `start..end` a member reads, from the cache's layout.
pub fn member_columns(
    member: &MemberSpec,
    layout: &[(String, usize)],
) -> Result<(usize, usize), FitError> {
    let total = layout.iter().map(|(_, w)| w).sum();
    let Some(parts) = &member.parts else {
        return Ok((0, total));
    };
    let mut start = 0;
    let mut spans = Vec::new();
    for (name, width) in layout {
        if parts.contains(name) {
            spans.push((start, start + width));
        }
        start += width;
    }
    let known: Vec<&str> = layout.iter().map(|(n, _)| n.as_str()).collect();
    if spans.len() != parts.len() {
        return Err(FitError::Data(format!(
            "ensemble member `{}`: the features have the parts {known:?}",
            parts.join("+")
        )));
    }
    if spans.windows(2).any(|w| w[0].1 != w[1].0) {
        return Err(FitError::Data(format!(
            "ensemble member `{}`: its parts are not neighbours in the column order {known:?}",
            parts.join("+")
        )));
    }
    Ok((spans[0].0, spans[spans.len() - 1].1))
}

pub fn fit_ensemble(
    cache: &FeatureCache,
    train: &BTreeSet<String>,
    val: &BTreeSet<String>,
    cfg: &FitConfig,
    spec: &str,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<FitOutcome, FitError> {
    let layout = cache.layout();
    let mut members = Vec::new();
    for (i, m) in parse_members(spec)?.iter().enumerate() {
        let (start, end) = member_columns(m, &layout)?;
        let member_cfg = FitConfig {
            ensemble: None,
            seed: cfg.seed + i as u64,
            ..cfg.clone()
        };
        let outcome = fit_one(
            &cache.columns(start, end),
            train,
            val,
            &member_cfg,
            &mut on_epoch,
        )?;
        let Head::Single(head) = outcome.head else {
            return Err(FitError::Data(format!(
                "ensemble member {i} is an ensemble"
            )));
        };
        members.push(EnsembleMember {
            columns: (start, end),
            weight: m.weight,
            head,
        });
    }
    let head = Head::Ensemble(
        EnsembleHead::new(cache.eval.ncols(), members)
            .map_err(|e| FitError::Data(e.to_string()))?,
    );
    let val_rows = rows_of(cache, val);
    let validation = evaluate_protocols(&embed_cached(&head, cache, &val_rows))?;
    Ok(FitOutcome::new(
        head,
        0,
        validation,
        Vec::new(),
        cache,
        &val_rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Vec<(String, usize)> {
        [
            ("geometry", 400),
            ("trunk", 1152),
            ("shape", 65),
            ("local", 2352),
        ]
        .into_iter()
        .map(|(n, w)| (n.to_string(), w))
        .collect()
    }

    #[test]
    fn members_parse_and_find_their_columns() {
        let m = parse_members("all; trunk+shape:0.5 ;local").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(member_columns(&m[0], &layout()).unwrap(), (0, 3969));
        assert_eq!(
            (member_columns(&m[1], &layout()).unwrap(), m[1].weight),
            ((400, 1617), 0.5)
        );
        assert_eq!(member_columns(&m[2], &layout()).unwrap(), (1617, 3969));
        let apart = &parse_members("geometry+shape;all").unwrap()[0];
        let e = member_columns(apart, &layout()).unwrap_err().to_string();
        assert!(e.contains("not neighbours"), "{e}");
        let unknown = &parse_members("palm;all").unwrap()[0];
        assert!(member_columns(unknown, &layout()).is_err());
        assert!(parse_members("all").is_err(), "one member is no ensemble");
        assert!(parse_members("all;all:-1").is_err());
    }
}
