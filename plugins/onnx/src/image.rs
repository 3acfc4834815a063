//! Images in, model tensors out: decoding (PNG, JPEG with its EXIF orientation, WebP, GIF's
//! first frame, BMP, TIFF; greyscale and alpha made RGB), and the preprocessing a model was
//! trained with, declared as data ([`Preprocess`]) in the catalog entry or the step.

use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The largest image side and decoded size accepted: bigger files are refused before they
/// are decoded (a small PNG can claim to be 100,000 × 100,000 pixels).
const MAX_SIDE: u32 = 16_384;
const MAX_DECODED_BYTES: u64 = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is empty (0 bytes)")]
    Empty { path: String },
    #[error("{path} is not an image this plugin can read: {message}")]
    Decode { path: String, message: String },
    #[error("the preprocessing is invalid: {0}")]
    Preprocess(String),
}

impl ImageError {
    pub fn code(&self) -> &'static str {
        match self {
            ImageError::Io { .. } => "io",
            ImageError::Empty { .. } | ImageError::Decode { .. } => "bad_image",
            ImageError::Preprocess(_) => "bad_config",
        }
    }
}

/// How an image becomes the model's input tensor, in this order: resize, optional JPEG
/// round trip, centre crop, channel order, `(pixel × scale − mean) / std`, layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    pub resize: Resize,
    /// Encode the resized image as JPEG at this quality and decode it again, as models
    /// trained on JPEG files (open-nsfw) expect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg_roundtrip: Option<u8>,
    /// A centre crop after resizing; none keeps the resized image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<Size>,
    #[serde(default)]
    pub channels: Channels,
    /// Pixels (0–255) are multiplied by this first (1/255 gives 0–1).
    #[serde(default = "one")]
    pub scale: f32,
    /// Subtracted per channel, in the model's channel order, after scaling.
    #[serde(default)]
    pub mean: [f32; 3],
    /// Divided per channel, after the mean.
    #[serde(default = "ones")]
    pub std: [f32; 3],
    #[serde(default)]
    pub layout: Layout,
}

fn one() -> f32 {
    1.0
}

fn ones() -> [f32; 3] {
    [1.0; 3]
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    pub width: u32,
    pub height: u32,
    /// `stretch` resizes to exactly width × height; `shorter_side` scales the shorter side
    /// to `min(width, height)` and keeps the aspect ratio (crop afterwards).
    #[serde(default)]
    pub mode: ResizeMode,
    #[serde(default)]
    pub filter: Filter,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    #[default]
    Stretch,
    ShorterSide,
}

/// The resampling filter; each widens with the downscale factor (antialiased), as
/// Pillow's do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    Nearest,
    #[default]
    Bilinear,
    Bicubic,
    Lanczos,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channels {
    #[default]
    Rgb,
    Bgr,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

impl Preprocess {
    /// The tensor's height and width for one image.
    pub fn output_size(&self) -> Size {
        self.crop.unwrap_or(Size {
            width: self.resize.width,
            height: self.resize.height,
        })
    }

    /// What is wrong with it, if anything.
    pub fn check(&self) -> Result<(), String> {
        let r = &self.resize;
        if r.width == 0 || r.height == 0 || r.width > 4096 || r.height > 4096 {
            return Err(format!(
                "resize {}×{} must be between 1 and 4096 pixels a side",
                r.width, r.height
            ));
        }
        if let Some(c) = self.crop {
            let (w, h) = match r.mode {
                ResizeMode::Stretch => (r.width, r.height),
                ResizeMode::ShorterSide => (r.width.min(r.height), r.width.min(r.height)),
            };
            if c.width == 0 || c.height == 0 || c.width > w || c.height > h {
                return Err(format!(
                    "crop {}×{} does not fit in the resized {}×{}",
                    c.width, c.height, w, h
                ));
            }
        }
        if let Some(q) = self.jpeg_roundtrip {
            if !(1..=100).contains(&q) {
                return Err(format!("jpeg_roundtrip quality {q} is not in 1–100"));
            }
        }
        if self.std.contains(&0.0) || self.scale == 0.0 {
            return Err("std and scale must not be 0".into());
        }
        Ok(())
    }
}

/// Reads an image file into RGB: EXIF orientation applied, the first frame of an animation,
/// greyscale replicated, transparency composited over white (what a reader sees on a
/// page). `label` names the file in errors.
pub fn decode(path: &Path, label: &str) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|e| ImageError::Io {
        path: label.to_owned(),
        source: e,
    })?;
    decode_bytes(&bytes, label)
}

/// [`decode`] of bytes in memory.
pub fn decode_bytes(bytes: &[u8], label: &str) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty {
            path: label.to_owned(),
        });
    }
    let bad = |message: String| ImageError::Decode {
        path: label.to_owned(),
        message,
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    if reader.format().is_none() {
        return Err(bad(
            "its format is not one of PNG, JPEG, WebP, GIF, BMP or TIFF".into(),
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(to_rgb(img))
}

fn to_rgb(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(p[3]);
        for c in 0..3 {
            let v = (u16::from(p[c]) * a + 255 * (255 - a) + 127) / 255;
            o[c] = v.min(255) as u8;
        }
    }
    out
}

fn filter(f: Filter) -> FilterType {
    match f {
        Filter::Nearest => FilterType::Nearest,
        Filter::Bilinear => FilterType::Triangle,
        Filter::Bicubic => FilterType::CatmullRom,
        Filter::Lanczos => FilterType::Lanczos3,
    }
}

/// The model input for one image: `h × w × 3` values (NHWC) or `3 × h × w` (NCHW),
/// appended to `out`.
pub fn prepare(img: &RgbImage, p: &Preprocess, out: &mut Vec<f32>) -> Result<(), ImageError> {
    p.check().map_err(ImageError::Preprocess)?;
    let (w, h) = match p.resize.mode {
        ResizeMode::Stretch => (p.resize.width, p.resize.height),
        ResizeMode::ShorterSide => {
            let target = p.resize.width.min(p.resize.height) as f64;
            let (iw, ih) = (img.width() as f64, img.height() as f64);
            let s = target / iw.min(ih);
            (
                ((iw * s).round() as u32).max(1),
                ((ih * s).round() as u32).max(1),
            )
        }
    };
    let mut resized = if (w, h) == img.dimensions() {
        img.clone()
    } else {
        image::imageops::resize(img, w, h, filter(p.resize.filter))
    };
    if let Some(quality) = p.jpeg_roundtrip {
        let mut buf = Vec::new();
        JpegEncoder::new_with_quality(&mut buf, quality)
            .encode_image(&resized)
            .map_err(|e| ImageError::Preprocess(format!("JPEG round trip: {e}")))?;
        resized = image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)
            .map_err(|e| ImageError::Preprocess(format!("JPEG round trip: {e}")))?
            .into_rgb8();
    }
    let size = p.output_size();
    let x0 = (resized.width() - size.width.min(resized.width())) / 2;
    let y0 = (resized.height() - size.height.min(resized.height())) / 2;
    let order: [usize; 3] = match p.channels {
        Channels::Rgb => [0, 1, 2],
        Channels::Bgr => [2, 1, 0],
    };
    let value = |x: u32, y: u32, c: usize| {
        let px = resized.get_pixel(x0 + x, y0 + y);
        (f32::from(px[order[c]]) * p.scale - p.mean[c]) / p.std[c]
    };
    let (cw, ch) = (size.width, size.height);
    out.reserve((cw * ch * 3) as usize);
    match p.layout {
        Layout::Nhwc => {
            for y in 0..ch {
                for x in 0..cw {
                    for c in 0..3 {
                        out.push(value(x, y, c));
                    }
                }
            }
        }
        Layout::Nchw => {
            for c in 0..3 {
                for y in 0..ch {
                    for x in 0..cw {
                        out.push(value(x, y, c));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, Rgba, RgbaImage};

    fn encode(img: DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, format).unwrap();
        buf.into_inner()
    }

    fn plain() -> Preprocess {
        Preprocess {
            resize: Resize {
                width: 4,
                height: 2,
                mode: ResizeMode::Stretch,
                filter: Filter::Nearest,
            },
            jpeg_roundtrip: None,
            crop: None,
            channels: Channels::Rgb,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            layout: Layout::Nhwc,
        }
    }

    #[test]
    fn greyscale_and_transparency_become_rgb() {
        let grey = GrayImage::from_pixel(3, 2, Luma([90]));
        let rgb = decode_bytes(
            &encode(DynamicImage::ImageLuma8(grey), image::ImageFormat::Png),
            "grey.png",
        )
        .unwrap();
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([90, 90, 90]));

        let mut rgba = RgbaImage::from_pixel(2, 1, Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, Rgba([200, 10, 10, 255]));
        let rgb = decode_bytes(
            &encode(DynamicImage::ImageRgba8(rgba), image::ImageFormat::Png),
            "a.png",
        )
        .unwrap();
        assert_eq!(
            rgb.get_pixel(0, 0),
            &Rgb([255, 255, 255]),
            "transparent is white"
        );
        assert_eq!(rgb.get_pixel(1, 0), &Rgb([200, 10, 10]));
    }

    /// A JPEG with an EXIF APP1 segment that says "rotate 90° clockwise to display"
    /// (orientation 6), as phones write.
    fn jpeg_with_orientation(img: RgbImage, orientation: u8) -> Vec<u8> {
        let jpeg = encode(DynamicImage::ImageRgb8(img), image::ImageFormat::Jpeg);
        let mut tiff = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0".to_vec();
        tiff.extend([orientation, 0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let len = (app1.len() + 2) as u16;
        let mut out = jpeg[..2].to_vec();
        out.extend([0xFF, 0xE1]);
        out.extend(len.to_be_bytes());
        out.extend(app1);
        out.extend(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_is_applied() {
        // 16 wide, 8 high; the left half bright. Displayed rotated 90° clockwise it is
        // 8 wide, 16 high, with the bright half on top.
        let img = RgbImage::from_fn(16, 8, |x, _| {
            if x < 8 {
                Rgb([250, 250, 250])
            } else {
                Rgb([5, 5, 5])
            }
        });
        let plain = decode_bytes(&jpeg_with_orientation(img.clone(), 1), "up.jpg").unwrap();
        assert_eq!(plain.dimensions(), (16, 8));
        let rotated = decode_bytes(&jpeg_with_orientation(img, 6), "phone.jpg").unwrap();
        assert_eq!(rotated.dimensions(), (8, 16));
        assert!(rotated.get_pixel(4, 2)[0] > 200, "bright on top");
        assert!(rotated.get_pixel(4, 13)[0] < 50, "dark below");
    }

    #[test]
    fn bad_bytes_are_named_errors() {
        let e = decode_bytes(b"", "empty.jpg").unwrap_err();
        assert_eq!(e.to_string(), "empty.jpg is empty (0 bytes)");
        let e = decode_bytes(b"hello, not an image", "note.png").unwrap_err();
        assert_eq!(e.code(), "bad_image");
        assert!(e.to_string().starts_with("note.png is not an image"), "{e}");
        let mut png = encode(
            DynamicImage::ImageRgb8(RgbImage::new(64, 64)),
            image::ImageFormat::Png,
        );
        png.truncate(png.len() / 2);
        let e = decode_bytes(&png, "cut.png").unwrap_err();
        assert_eq!(e.code(), "bad_image", "{e}");
    }

    #[test]
    fn layouts_channel_order_and_normalisation() {
        let mut img = RgbImage::new(4, 2);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = Rgb([(x * 10) as u8, (y * 10) as u8, 7]);
        }
        let mut p = plain();
        let mut out = Vec::new();
        prepare(&img, &p, &mut out).unwrap();
        assert_eq!(&out[..6], &[0.0, 0.0, 7.0, 10.0, 0.0, 7.0]);

        p.layout = Layout::Nchw;
        p.channels = Channels::Bgr;
        p.mean = [7.0, 0.0, 0.0];
        p.std = [1.0, 1.0, 2.0];
        out.clear();
        prepare(&img, &p, &mut out).unwrap();
        assert_eq!(out.len(), 24);
        assert!(out[..8].iter().all(|v| *v == 0.0), "B − 7");
        assert_eq!(out[8 + 4], 10.0, "G of row 1");
        assert_eq!(out[16 + 1], 5.0, "R of x=1, halved");
    }

    #[test]
    fn shorter_side_resize_then_centre_crop() {
        let mut img = RgbImage::from_pixel(40, 20, Rgb([0, 0, 0]));
        for y in 0..20 {
            img.put_pixel(20, y, Rgb([255, 255, 255]));
            img.put_pixel(21, y, Rgb([255, 255, 255]));
        }
        let mut p = plain();
        p.resize = Resize {
            width: 10,
            height: 10,
            mode: ResizeMode::ShorterSide,
            filter: Filter::Nearest,
        };
        p.crop = Some(Size {
            width: 4,
            height: 4,
        });
        let mut out = Vec::new();
        prepare(&img, &p, &mut out).unwrap();
        assert_eq!(out.len(), 4 * 4 * 3);
        // resized to 20×10, crop starts at x = 8: the white band (x = 10) is at 2
        assert_eq!(out[2 * 3], 255.0);
        p.crop = Some(Size {
            width: 11,
            height: 4,
        });
        assert!(
            prepare(&img, &p, &mut out).is_err(),
            "crop wider than the resize"
        );
    }
}
