//! `plot`: draws the latency CDFs `scripts bench` (ONLY=latency, PLOT_DIR) writes as JSON into
//! an SVG: each series is a list of `[quantile, ms]` points, drawn as a step CDF on a log
//! latency axis, so the receiver's acknowledgement latency sits beside the disk's own.
//!
//! ```text
//! plot --input latency.json --output latency-cdf.svg
//! ```
//!
//! Input: `{"title": "...", "series": [{"name": "...", "cdf": [[0.5, 3.2], ...]}, ...]}`.

use std::path::PathBuf;

use clap::Parser;
use plotters::prelude::*;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    output: PathBuf,
}

/// One named CDF: (latency ms, fraction of requests at or below it), sorted by latency.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

fn read(path: &PathBuf) -> (String, Vec<Series>) {
    let text = std::fs::read_to_string(path).expect("read the plot JSON");
    let v: serde_json::Value = serde_json::from_str(&text).expect("plot JSON");
    let title = v["title"].as_str().unwrap_or_default().to_owned();
    let series = v["series"]
        .as_array()
        .expect("a series array")
        .iter()
        .map(|s| {
            let mut points: Vec<(f64, f64)> = s["cdf"]
                .as_array()
                .expect("a cdf array")
                .iter()
                .filter_map(|p| Some((p[1].as_f64()?, p[0].as_f64()?)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            Series { name: s["name"].as_str().unwrap_or_default().to_owned(), points }
        })
        .collect();
    (title, series)
}

/// A step CDF's corners: the fraction holds until the next latency is reached.
fn steps(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2);
    for (i, &(ms, q)) in points.iter().enumerate() {
        if i > 0 {
            out.push((ms, points[i - 1].1));
        }
        out.push((ms, q));
    }
    out
}

fn main() {
    let args = Args::parse();
    let (title, series) = read(&args.input);
    let all = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = all.fold((f64::MAX, 0f64), |(lo, hi), ms| (lo.min(ms), hi.max(ms)));
    // Sub-0.1 ms bins say nothing here and would stretch a log axis.
    let (lo, hi) = ((lo * 0.8).max(0.1), (hi * 1.25).max(1.0));
    let root = SVGBackend::new(&args.output, (900, 520)).into_drawing_area();
    root.fill(&WHITE).expect("fill");
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.0)
        .expect("chart");
    chart
        .configure_mesh()
        .x_desc("acknowledgement / write + fdatasync latency, ms (log)")
        .y_desc("fraction of requests")
        .draw()
        .expect("mesh");
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(steps(&s.points), color.stroke_width(2)))
            .expect("series")
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .expect("legend");
    root.present().expect("write the SVG");
}
