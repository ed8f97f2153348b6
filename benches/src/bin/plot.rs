//! `plot`: draws what `scripts/bench` writes as JSON with PLOT_DIR into an SVG. `"kind": "cdf"`
//! (ONLY=latency): each series is a list of `[quantile, ms]` points, drawn as a step CDF on a
//! log latency axis, so the receiver's acknowledgement latency sits beside the disk's own.
//! `"kind": "xy"` (ONLY=scaling): each series is `[x, y]` points (MB/s against connections),
//! drawn as lines with a mark per measurement.
//!
//! ```text
//! plot --input latency.json --output latency-cdf.svg
//! ```
//!
//! Input: `{"kind": "cdf", "title": "...", "x": "axis", "y": "axis",
//! "series": [{"name": "...", "points": [[0.5, 3.2], ...]}, ...]}`.

use std::path::PathBuf;

use clap::Parser;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    output: PathBuf,
}

/// One named line: (x, y) points sorted by x; for a CDF, (latency ms, fraction at or below it).
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// How a series' points become the line drawn: a CDF's steps, or the points themselves.
type Shape = fn(&[(f64, f64)]) -> Vec<(f64, f64)>;

/// A chart's title, axis descriptions and series.
struct Plot {
    cdf: bool,
    title: String,
    x: String,
    y: String,
    series: Vec<Series>,
}

fn read(path: &PathBuf) -> Plot {
    let text = std::fs::read_to_string(path).expect("read the plot JSON");
    let v: serde_json::Value = serde_json::from_str(&text).expect("plot JSON");
    let cdf = v["kind"].as_str() != Some("xy");
    let text_of = |key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let series = v["series"]
        .as_array()
        .expect("a series array")
        .iter()
        .map(|s| {
            // A CDF's points are [quantile, ms]: the latency goes on the x axis.
            let (xi, yi) = if cdf { (1, 0) } else { (0, 1) };
            let mut points: Vec<(f64, f64)> = s["points"]
                .as_array()
                .expect("a points array")
                .iter()
                .filter_map(|p| Some((p[xi].as_f64()?, p[yi].as_f64()?)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            Series { name: s["name"].as_str().unwrap_or_default().to_owned(), points }
        })
        .collect();
    Plot { cdf, title: text_of("title"), x: text_of("x"), y: text_of("y"), series }
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
    let plot = read(&args.input);
    let root = SVGBackend::new(&args.output, (900, 520)).into_drawing_area();
    root.fill(&WHITE).expect("fill");
    let xs = plot.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let mut builder = ChartBuilder::on(&root);
    builder.caption(&plot.title, ("sans-serif", 18)).margin(12);
    builder.x_label_area_size(40).y_label_area_size(60);
    if plot.cdf {
        // Sub-0.1 ms bins say nothing here and would stretch a log axis.
        let x = ((lo * 0.8).max(0.1)..(hi * 1.25).max(1.0)).log_scale();
        let chart = builder.build_cartesian_2d(x, 0f64..1.0).expect("chart");
        draw(chart, &plot, steps);
    } else {
        let top =
            plot.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0f64, f64::max);
        let chart = builder.build_cartesian_2d(0f64..hi * 1.1, 0f64..top * 1.15).expect("chart");
        draw(chart, &plot, <[(f64, f64)]>::to_vec);
    }
    root.present().expect("write the SVG");
}

/// Draws the mesh, each series (its points through `shape`, a mark per measurement on xy
/// plots) and the legend.
fn draw<'a, X, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    plot: &Plot,
    shape: Shape,
) where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart.configure_mesh().x_desc(&plot.x).y_desc(&plot.y).draw().expect("mesh");
    for (i, s) in plot.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(shape(&s.points), color.stroke_width(2)))
            .expect("series")
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        if !plot.cdf {
            let marks = s.points.iter().map(|&p| Circle::new(p, 3, color.filled()));
            chart.draw_series(marks).expect("marks");
        }
    }
    let corner =
        if plot.cdf { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperLeft };
    chart
        .configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .expect("legend");
}
