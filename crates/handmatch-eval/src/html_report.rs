//! `report.html`: a self-contained page (thumbnails embedded as data URIs, no server needed)
//! where one picks a back-of-hand query and sees the top-10 palm candidates with their
//! scores, the correct subject outlined — like the reference study's interactive page.

use std::collections::BTreeMap;
use std::io::Cursor;

use base64::Engine;

use super::run::RunResults;
use handmatch_core::embed::decode::{decode_rgb, DecodeLimits};
use handmatch_core::hand_image::{Aspect, HandImage};
use handmatch_core::resize::resize;

/// Thumbnails are this wide; small enough that a few hundred fit in one page.
const THUMB_WIDTH: u32 = 120;
const SHOWN: usize = 10;

fn thumbnail(img: &HandImage) -> anyhow::Result<String> {
    let rgb = decode_rgb(&std::fs::read(&img.path)?, &DecodeLimits::default())?;
    let h = (rgb.height() as u64 * THUMB_WIDTH as u64 / rgb.width().max(1) as u64).max(1) as u32;
    let small = resize(&rgb, THUMB_WIDTH, h);
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(small)
        .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)?;
    Ok(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    ))
}

/// Builds the page from a run's results and the images it used.
pub fn render(results: &RunResults, images: &[&HandImage]) -> anyhow::Result<String> {
    let by_name: BTreeMap<&str, &HandImage> =
        images.iter().map(|i| (i.image_name.as_str(), *i)).collect();
    // One palm thumbnail per subject: its first palmar image.
    let mut palm: BTreeMap<&str, String> = BTreeMap::new();
    for img in images.iter().filter(|i| i.aspect == Aspect::Palmar) {
        if !palm.contains_key(img.subject.as_str()) {
            palm.insert(img.subject.as_str(), thumbnail(img)?);
        }
    }
    let mut queries = Vec::new();
    for q in &results.image_queries {
        let img = by_name
            .get(q.images[0].as_str())
            .ok_or_else(|| anyhow::anyhow!("query image {} is not in the dataset", q.images[0]))?;
        queries.push(serde_json::json!({
            "image": q.images[0],
            "subject": q.subject,
            "rank": q.rank,
            "thumb": thumbnail(img)?,
            "candidates": q.candidates.iter().take(SHOWN).map(|(s, score)| serde_json::json!({"subject": s, "score": score})).collect::<Vec<_>>(),
        }));
    }
    let data = serde_json::json!({ "queries": queries, "palms": palm });
    let metrics = |name: &str, m: &handmatch_core::metrics::RetrievalMetrics| {
        let r = |k| m.recall_at(k).map_or(f64::NAN, |x| x.value);
        format!(
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2}</td><td>{:.3}</td></tr>",
            m.queries, m.gallery_size, r(1), r(5), r(10), m.mean_rank, m.mean_ap
        )
    };
    let table = format!(
        "{}{}",
        metrics("template → template", &results.template_to_template),
        metrics("image → template", &results.image_to_template)
    );
    // `</` cannot end the script element early once escaped.
    let json = data.to_string().replace("</", "<\\/");
    Ok(PAGE.replace("{{TABLE}}", &table).replace("{{DATA}}", &json))
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>handmatch evaluation</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}
#candidates{display:flex;flex-wrap:wrap;gap:.6em}
.card{border:3px solid transparent;padding:.3em;text-align:center;font-size:.85em;width:130px}
.card.correct{border-color:#1a9e3a;background:#eefbf0}
.card img{width:120px;display:block;margin:0 auto .2em}
#query img{width:160px}
</style></head><body>
<h1>handmatch: back of the hand → palm</h1>
<table><tr><th>protocol</th><th>queries</th><th>gallery</th><th>R@1</th><th>R@5</th><th>R@10</th><th>mean rank</th><th>mAP</th></tr>{{TABLE}}</table>
<label>Query (back of the hand): <select id="pick"></select></label>
<div id="query"></div>
<h2>Top 10 palm candidates</h2>
<div id="candidates"></div>
<script type="application/json" id="data">{{DATA}}</script>
<script>
const data = JSON.parse(document.getElementById('data').textContent);
const pick = document.getElementById('pick');
data.queries.forEach((q, i) => {
  const o = document.createElement('option');
  o.value = i; o.textContent = q.image + ' (subject ' + q.subject + ', rank ' + (q.rank ?? '>100') + ')';
  pick.appendChild(o);
});
function show(i) {
  const q = data.queries[i];
  document.getElementById('query').innerHTML = '';
  const img = document.createElement('img'); img.src = q.thumb; img.alt = q.image;
  document.getElementById('query').append(img, document.createTextNode(' subject ' + q.subject));
  const list = document.getElementById('candidates'); list.innerHTML = '';
  q.candidates.forEach((c, r) => {
    const card = document.createElement('div');
    card.className = 'card' + (c.subject === q.subject ? ' correct' : '');
    card.dataset.subject = c.subject;
    const im = document.createElement('img'); im.src = data.palms[c.subject] || ''; im.alt = c.subject;
    card.append(im, document.createTextNode('#' + (r + 1) + ' ' + c.subject + ' ' + c.score.toFixed(4)));
    list.appendChild(card);
  });
}
pick.addEventListener('change', e => show(+e.target.value));
// `report.html#q=N` opens on query N (links, and the browser test).
const start = Math.min(+(location.hash.match(/q=(\d+)/) || [0, 0])[1], Math.max(data.queries.length - 1, 0));
pick.value = start;
if (data.queries.length) show(start);
</script></body></html>
"#;
