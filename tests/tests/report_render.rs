//! The review report rendered by a real browser: headless Chromium prints it to PDF on US
//! Letter (Chromium's default) and on A4 (`@page { size: A4 }` added, as a printer set to A4
//! would), `pdfinfo` counts the pages and reads the paper, and `pdftoppm` turns page 1 into a
//! PNG that must not be blank. The files stay in the target folder to be looked at
//! (`target/tmp/report-render/`).
//!
//! Debian's `chromium` and `poppler-utils` are installed by `scripts/test`; elsewhere the test
//! is skipped with the reason printed, unless ALLIANCE_REQUIRE_BROWSER=1 (set by scripts/test).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use alliance_core::NewCheckIn;
use alliance_tests::known_plan::known_plan;
use chrono::{Days, NaiveDate};

/// Why the browser test cannot run here, if it cannot.
fn missing_tool() -> Option<String> {
    for tool in ["chromium", "pdftoppm", "pdfinfo", "timeout"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-render");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Prints `html` to `pdf` with headless Chromium (a private profile, nothing fetched).
fn print_to_pdf(html: &Path, pdf: &Path, profile: &Path) {
    let output = Command::new("timeout")
        .arg("180")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    assert!(
        output.status.success() && pdf.exists(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `pdfinfo`'s pages and page size in points.
fn pdf_info(pdf: &Path) -> (u32, f64, f64) {
    let output = Command::new("pdfinfo").arg(pdf).output().expect("pdfinfo");
    assert!(output.status.success(), "pdfinfo failed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("pdfinfo gave no {name}: {text}"))
            .to_owned()
    };
    let pages = field("Pages:").parse().unwrap();
    // "612 x 792 pts (letter)"
    let size = field("Page size:");
    let mut numbers = size
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok());
    (pages, numbers.next().unwrap(), numbers.next().unwrap())
}

/// Page 1 as a PNG at 60 dpi.
fn first_page_png(pdf: &Path, stem: &Path) -> PathBuf {
    let status = Command::new("pdftoppm")
        .args(["-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile"])
        .arg(pdf)
        .arg(stem)
        .status()
        .expect("pdftoppm");
    assert!(status.success(), "pdftoppm failed");
    stem.with_extension("png")
}

/// An 8-bit RGB or RGBA PNG (what pdftoppm writes) as its width, height and RGB pixels.
fn decode_png(bytes: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    let mut compressed = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let data = &bytes[at + 8..at + 8 + length];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "bit depth");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("colour type {other}"),
                };
                assert_eq!(data[12], 0, "interlaced");
            }
            b"IDAT" => compressed.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + length;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&compressed[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "image data size");
    let mut pixels = Vec::with_capacity(width * height);
    let mut previous = vec![0u8; stride];
    for row in raw.chunks(stride + 1) {
        let (filter, line) = (row[0], &row[1..]);
        let mut current = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels {
                current[i - channels]
            } else {
                0
            };
            let b = previous[i];
            let c = if i >= channels {
                previous[i - channels]
            } else {
                0
            };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                other => panic!("filter {other}"),
            };
            current[i] = line[i].wrapping_add(predicted);
        }
        pixels.extend(current.chunks(channels).map(|p| [p[0], p[1], p[2]]));
        previous = current;
    }
    (width, height, pixels)
}

/// Checks that page 1 rendered: some ink (text is dark), some colour (charts, calendar).
fn assert_not_blank(png: &Path) -> (usize, usize, f64) {
    let (width, height, pixels) = decode_png(&std::fs::read(png).unwrap());
    assert!(width > 300 && height > 300, "{width}x{height}");
    let ink = pixels.iter().filter(|p| p.iter().any(|&c| c < 200)).count();
    let dark = pixels.iter().filter(|p| p.iter().all(|&c| c < 80)).count();
    let share = ink as f64 / pixels.len() as f64;
    assert!(share > 0.01, "page 1 is nearly blank ({share})");
    assert!(dark > 200, "no text on page 1 ({dark} dark pixels)");
    (width, height, share)
}

#[test]
fn the_report_prints_on_letter_and_a4_in_headless_chromium() {
    if let Some(reason) = missing_tool() {
        if std::env::var("ALLIANCE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("ALLIANCE_REQUIRE_BROWSER=1 but {reason}");
        }
        println!("skipped: {reason}; scripts/test installs chromium and poppler-utils");
        return;
    }
    // The known plan, and three weeks of the client's check-ins up to their today, so that
    // every chart and the calendar have something to show.
    let known = known_plan();
    let today = known.client.store.plan(known.plan).unwrap().client_today;
    let today = NaiveDate::parse_from_str(&today, "%Y-%m-%d").unwrap();
    for back in (0..21u32).rev().filter(|d| d % 4 != 3) {
        let day = today.checked_sub_days(Days::new(u64::from(back))).unwrap();
        let wave = (back % 5) as u8;
        known
            .client
            .store
            .check_in(
                known.plan,
                known.sleep,
                &NewCheckIn {
                    gas_level: Some(i8::try_from(back % 3).unwrap() - 1),
                    mood: Some(3 + wave),
                    craving: Some(8 - wave),
                    local_date: Some(day.format("%Y-%m-%d").to_string()),
                    tz_offset_min: Some(60),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    known.counselor.sync(&known.client);
    let html = known.counselor.store.export_report(known.plan).unwrap();

    let dir = out_dir();
    let letter_html = dir.join("report.html");
    std::fs::write(&letter_html, &html).unwrap();
    let a4_html = dir.join("report-a4.html");
    std::fs::write(
        &a4_html,
        html.replacen("</style>", "@page { size: A4; }</style>", 1),
    )
    .unwrap();
    for (name, page, width, height) in [
        ("letter", &letter_html, 612.0, 792.0),
        ("a4", &a4_html, 595.0, 842.0),
    ] {
        let pdf = dir.join(format!("report-{name}.pdf"));
        let _ = std::fs::remove_file(&pdf);
        print_to_pdf(page, &pdf, &dir.join(format!("profile-{name}")));
        let (pages, w, h) = pdf_info(&pdf);
        assert!(pages >= 2, "{name}: {pages} page(s)");
        assert!(
            (w - width).abs() < 2.0 && (h - height).abs() < 2.0,
            "{name}: {w} x {h}"
        );
        let png = first_page_png(&pdf, &dir.join(format!("report-{name}-page1")));
        let (pw, ph, share) = assert_not_blank(&png);
        println!(
            "{name}: {pages} pages of {w} x {h} pt; page 1 {pw}x{ph} px, {:.1}% inked: {}",
            share * 100.0,
            png.display()
        );
    }
}
