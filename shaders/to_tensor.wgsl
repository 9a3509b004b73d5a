// Pass 2 of GPU preprocessing: one invocation per tensor pixel.
//
// Maps the pixel through the letterbox rectangle, mirror and rotation to a sample of the resampled
// picture (stored orientation, `Plan::source_index`), applies the vertical taps to the rows written
// by resample_rows.wgsl, converts YUV to RGB with the frame's matrix and range (f32, as
// `preprocess::YuvToRgb`), orders the channels, normalises (`value = rgb * scale + offset`) and
// writes f32 in the model's layout (0 = NHWC, 1 = NCHW). Outside the picture: the padding colour.
//
// Packed RGB (kind 0): integer vertical sums rounded to 8 bits as PIL does, bit-identical to the CPU
// path; kind 3, the same with the passes the other way round (horizontal sums here). Packed RGB
// kept exact (kind 2) and YUV: f32 vertical sums, unrounded.

struct Params {
    rw: u32, rh: u32, out_w: u32, out_h: u32,
    dst_x: u32, dst_y: u32, dst_w: u32, dst_h: u32,
    rotation: u32, mirror: u32, nchw: u32, kind: u32,
    y_base: u32, y_stride: u32, y_pstride: u32, luma_rows: u32,
    u_base: u32, u_stride: u32, u_pstride: u32, chroma_rows: u32,
    v_base: u32, v_stride: u32, v_pstride: u32, order: u32,
    hx_start: u32, hx_weights: u32, hx_width: u32, vy_span: u32,
    vy_start: u32, vy_weights: u32, vy_width: u32, cvy_span: u32,
    chx_start: u32, chx_weights: u32, chx_width: u32, chroma_inter: u32,
    cvy_start: u32, cvy_weights: u32, cvy_width: u32, pad_value: f32,
    y_offset: f32, y_scale: f32, r_v: f32, g_u: f32,
    g_v: f32, b_u: f32, hx_span: u32, hx_count: u32,
    scale: vec4<f32>,
    offset: vec4<f32>,
    source: vec4<u32>,
}

const KIND_PACKED: u32 = 0u;
const KIND_PACKED_EXACT: u32 = 2u;
const KIND_PACKED_DOWN_FIRST: u32 = 3u;
const LAYOUT_NCHW: u32 = 1u;
const HALF: i32 = 2097152; // 1 << 21
const ONE: f32 = 4194304.0; // 1 << 22

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inter: array<u32>;
@group(0) @binding(2) var<storage, read> taps: array<i32>;
@group(0) @binding(3) var<storage, read_write> tensor: array<f32>;

// Index (x, y) of the resampled picture holding picture pixel (dx, dy) of the destination rectangle.
fn source_index(dx: u32, dy: u32) -> vec2<u32> {
    var ux = dx;
    if p.mirror != 0u {
        ux = p.dst_w - 1u - dx;
    }
    switch p.rotation {
        case 1u: { return vec2<u32>(dy, p.rh - 1u - ux); }
        case 2u: { return vec2<u32>(p.rw - 1u - ux, p.rh - 1u - dy); }
        case 3u: { return vec2<u32>(p.rw - 1u - dy, ux); }
        default: { return vec2<u32>(ux, dy); }
    }
}

fn packed_rgb(s: vec2<u32>) -> vec3<f32> {
    let first = u32(taps[p.vy_start + s.y]);
    let weights = p.vy_weights + s.y * p.vy_width;
    var acc = vec3<i32>(HALF);
    for (var k = 0u; k < p.vy_width; k++) {
        let w = taps[weights + k];
        let v = inter[(first + k - p.vy_span) * p.rw + s.x];
        acc += w * vec3<i32>(i32(v & 0xffu), i32((v >> 8u) & 0xffu), i32((v >> 16u) & 0xffu));
    }
    return vec3<f32>(clamp(acc >> vec3<u32>(22u), vec3<i32>(0), vec3<i32>(255)));
}

// Kind 3: the horizontal taps over the columns resample_rows.wgsl resampled down first.
fn packed_down_first_rgb(s: vec2<u32>) -> vec3<f32> {
    let first = u32(taps[p.hx_start + s.x]);
    let weights = p.hx_weights + s.x * p.hx_width;
    var acc = vec3<i32>(HALF);
    for (var k = 0u; k < p.hx_width; k++) {
        let w = taps[weights + k];
        let v = inter[s.y * p.hx_count + first + k - p.hx_span];
        acc += w * vec3<i32>(i32(v & 0xffu), i32((v >> 8u) & 0xffu), i32((v >> 16u) & 0xffu));
    }
    return vec3<f32>(clamp(acc >> vec3<u32>(22u), vec3<i32>(0), vec3<i32>(255)));
}

fn packed_exact_rgb(s: vec2<u32>) -> vec3<f32> {
    let first = u32(taps[p.vy_start + s.y]);
    let weights = p.vy_weights + s.y * p.vy_width;
    var acc = vec3<f32>(0.0);
    for (var k = 0u; k < p.vy_width; k++) {
        let w = f32(taps[weights + k]) / ONE;
        let at = ((first + k - p.vy_span) * p.rw + s.x) * 3u;
        acc += w * vec3<f32>(bitcast<f32>(inter[at]), bitcast<f32>(inter[at + 1u]),
                             bitcast<f32>(inter[at + 2u]));
    }
    return acc;
}

fn yuv_rgb(s: vec2<u32>) -> vec3<f32> {
    var first = u32(taps[p.vy_start + s.y]);
    var weights = p.vy_weights + s.y * p.vy_width;
    var y = 0.0;
    for (var k = 0u; k < p.vy_width; k++) {
        let w = f32(taps[weights + k]) / ONE;
        y += w * bitcast<f32>(inter[(first + k - p.vy_span) * p.rw + s.x]);
    }
    first = u32(taps[p.cvy_start + s.y]);
    weights = p.cvy_weights + s.y * p.cvy_width;
    var u = 0.0;
    var v = 0.0;
    for (var k = 0u; k < p.cvy_width; k++) {
        let w = f32(taps[weights + k]) / ONE;
        let at = p.chroma_inter + ((first + k - p.cvy_span) * p.rw + s.x) * 2u;
        u += w * bitcast<f32>(inter[at]);
        v += w * bitcast<f32>(inter[at + 1u]);
    }
    let yy = (y - p.y_offset) * p.y_scale;
    let cu = u - 128.0;
    let cv = v - 128.0;
    return clamp(
        vec3<f32>(yy + p.r_v * cv, yy + p.g_u * cu + p.g_v * cv, yy + p.b_u * cu),
        vec3<f32>(0.0),
        vec3<f32>(255.0),
    );
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x;
    let y = id.y;
    if x >= p.out_w || y >= p.out_h {
        return;
    }
    var rgb = vec3<f32>(p.pad_value);
    let inside = x >= p.dst_x && x < p.dst_x + p.dst_w && y >= p.dst_y && y < p.dst_y + p.dst_h;
    if inside {
        let s = source_index(x - p.dst_x, y - p.dst_y);
        if p.kind == KIND_PACKED {
            rgb = packed_rgb(s);
        } else if p.kind == KIND_PACKED_DOWN_FIRST {
            rgb = packed_down_first_rgb(s);
        } else if p.kind == KIND_PACKED_EXACT {
            rgb = packed_exact_rgb(s);
        } else {
            rgb = yuv_rgb(s);
        }
    }
    let pixel = y * p.out_w + x;
    let plane = p.out_w * p.out_h;
    for (var k = 0u; k < 3u; k++) {
        let value = rgb[p.source[k]] * p.scale[k] + p.offset[k];
        if p.nchw == LAYOUT_NCHW {
            tensor[k * plane + pixel] = value;
        } else {
            tensor[pixel * 3u + k] = value;
        }
    }
}
