//! Charts as inline SVG rendered on the server: bars in columns (sales per
//! hour) and in rows (sync lag per register, numbers left per series). No
//! JavaScript, no chart library; integer arithmetic only (the workspace
//! denies float arithmetic). Each chart is a `<figure>` whose SVG has a
//! title for screen readers and a table of the same data beside it
//! ("Ver datos"), so nothing is only in the picture.
//!
//! Architecture invariant: pure; the data is passed in.

use maud::{html, Markup};

use crate::ui::text;

/// One bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// Its label (an hour, a register, a series).
    pub label: String,
    /// Its value; below zero is drawn as zero.
    pub value: i64,
    /// The value as a person reads it ("RD$ 1,250.00", "3 min").
    pub text: String,
    /// What a full bar stands for (a series' size); 0: the largest value of
    /// the chart.
    pub of: i64,
}

/// Width of every chart's drawing (SVG user units).
const WIDTH: i64 = 720;
/// The bar colour (contrast 6.4:1 on white) and the axis colour.
const BAR: &str = "#1d5b99";
const AXIS: &str = "#4a4a4a";

/// `value` scaled to `span` units against `max` (0 when `max` is 0).
fn scale(value: i64, max: i64, span: i64) -> i64 {
    if max <= 0 || value <= 0 {
        return 0;
    }
    let scaled = i128::from(value) * i128::from(span) / i128::from(max);
    i64::try_from(scaled).unwrap_or(span).clamp(0, span)
}

fn data_table(caption: &str, head: &str, bars: &[Bar]) -> Markup {
    html! {
        details class="chart-data" {
            summary { (text::CHART_SHOW_DATA) }
            table {
                caption { (caption) }
                thead { tr { th scope="col" { (head) } th scope="col" { (text::CHART_VALUE) } } }
                tbody {
                    @for b in bars {
                        tr { th scope="row" { (b.label) } td class="num" { (b.text) } }
                    }
                }
            }
        }
    }
}

/// Bars standing in columns, labelled every `label_every` columns (hours).
pub fn columns(id: &str, title: &str, head: &str, bars: &[Bar], label_every: usize) -> Markup {
    let (left, right, top, bottom, height) = (70_i64, 10_i64, 16_i64, 34_i64, 200_i64);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(0);
    let max_text = bars
        .iter()
        .find(|b| b.value == max)
        .map_or_else(String::new, |b| b.text.clone());
    let n = i64::try_from(bars.len()).unwrap_or(1).max(1);
    let slot = plot_w / n;
    let bar_w = (slot * 3 / 4).max(1);
    let title_id = format!("{id}-title");
    html! {
        figure class="chart" id=(id) {
            figcaption { (title) }
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby=(title_id)
                viewBox={"0 0 " (WIDTH) " " (height)} width="100%" preserveAspectRatio="xMinYMin meet" {
                title id=(title_id) { (title) }
                line x1=(left) y1=(top + plot_h) x2=(left + plot_w) y2=(top + plot_h) stroke=(AXIS) {}
                line x1=(left) y1=(top) x2=(left) y2=(top + plot_h) stroke=(AXIS) {}
                text x=(left - 6) y=(top + 10) text-anchor="end" font-size="11" fill=(AXIS) { (max_text) }
                text x=(left - 6) y=(top + plot_h) text-anchor="end" font-size="11" fill=(AXIS) { "0" }
                @for (i, b) in bars.iter().enumerate() {
                    @let i = i64::try_from(i).unwrap_or(0);
                    @let h = scale(b.value, max, plot_h);
                    @let x = left + i * slot + (slot - bar_w) / 2;
                    rect x=(x) y=(top + plot_h - h) width=(bar_w) height=(h) fill=(BAR) {
                        title { (b.label) ": " (b.text) }
                    }
                    @if label_every > 0 && usize::try_from(i).unwrap_or(0) % label_every == 0 {
                        text x=(x + bar_w / 2) y=(height - bottom + 16) text-anchor="middle" font-size="11" fill=(AXIS) { (b.label) }
                    }
                }
            }
            (data_table(title, head, bars))
        }
    }
}

/// Bars lying in rows, one per item, each with its label and value.
pub fn rows(id: &str, title: &str, head: &str, bars: &[Bar]) -> Markup {
    let (label_w, value_w, row_h, top) = (220_i64, 170_i64, 26_i64, 6_i64);
    let plot_w = WIDTH - label_w - value_w;
    let n = i64::try_from(bars.len()).unwrap_or(0);
    let height = top * 2 + row_h * n.max(1);
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(0);
    let title_id = format!("{id}-title");
    html! {
        figure class="chart" id=(id) {
            figcaption { (title) }
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby=(title_id)
                viewBox={"0 0 " (WIDTH) " " (height)} width="100%" preserveAspectRatio="xMinYMin meet" {
                title id=(title_id) { (title) }
                @if bars.is_empty() {
                    text x="10" y=(top + 17) font-size="13" fill=(AXIS) { (text::CHART_EMPTY) }
                }
                @for (i, b) in bars.iter().enumerate() {
                    @let y = top + i64::try_from(i).unwrap_or(0) * row_h;
                    @let w = scale(b.value, if b.of > 0 { b.of } else { max }, plot_w);
                    text x=(label_w - 8) y=(y + 17) text-anchor="end" font-size="12" fill="#1a1a1a" { (b.label) }
                    rect x=(label_w) y=(y + 4) width=(w) height=(row_h - 8) fill=(BAR) {
                        title { (b.label) ": " (b.text) }
                    }
                    text x=(label_w + w + 6) y=(y + 17) font-size="12" fill="#1a1a1a" { (b.text) }
                }
            }
            (data_table(title, head, bars))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: i64) -> Bar {
        Bar {
            label: label.into(),
            value,
            text: format!("{value} u"),
            of: 0,
        }
    }

    #[test]
    fn scaling_is_integer_and_bounded() {
        assert_eq!(scale(5, 10, 100), 50);
        assert_eq!(scale(10, 10, 100), 100);
        assert_eq!(scale(-3, 10, 100), 0);
        assert_eq!(scale(3, 0, 100), 0);
        assert_eq!(scale(i64::MAX, i64::MAX, 640), 640);
        assert_eq!(scale(1, i64::MAX, 640), 0);
    }

    #[test]
    fn columns_draw_one_bar_per_value_and_a_data_table() {
        let bars = [bar("08h", 10), bar("09h", 0), bar("10h", 5)];
        let svg = columns("c", "Ventas", "Hora", &bars, 1).into_string();
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        // The tallest bar fills the plot (150 units), half of it 75.
        assert!(svg.contains(r#"height="150""#), "{svg}");
        assert!(svg.contains(r#"height="75""#), "{svg}");
        assert!(svg.contains("<title id=\"c-title\">Ventas</title>"));
        assert!(svg.contains("<td class=\"num\">5 u</td>"));
        assert!(svg.contains("role=\"img\""));
    }

    #[test]
    fn rows_handle_empty_and_negative_data() {
        let empty = rows("r", "Retraso", "Caja", &[]).into_string();
        assert!(empty.contains(text::CHART_EMPTY));
        let svg = rows(
            "r",
            "Retraso",
            "Caja",
            &[bar("caja 1", -4), bar("caja 2", 8)],
        )
        .into_string();
        assert!(svg.contains(r#"width="0""#), "{svg}");
        assert!(svg.contains(r#"width="330""#), "{svg}");
        assert!(svg.contains("caja 2"));
        let half = Bar {
            of: 16,
            ..bar("B02", 8)
        };
        let svg = rows("f", "Quedan", "Serie", &[half]).into_string();
        assert!(svg.contains(r#"width="165""#), "{svg}");
    }
}
