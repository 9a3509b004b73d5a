// Pass 1 of GPU preprocessing: the horizontal resample of the rows the vertical pass needs (or,
// for packed RGB that PIL resizes down first, the vertical resample of the columns the horizontal
// pass needs).
//
// Reads the frame's planes (bytes packed four to a u32, byte addressing) and the horizontal filter
// taps. One invocation per (output column, source row):
//
// Taps are the manifest filter's weights in 22-bit fixed point (PIL's antialiased bilinear weights, or
// the two taps of `align_corners`), computed once per geometry on the CPU by
// runtime/src/preprocess/kernel.rs.
//
// * packed RGB (RGB8, RGBA8, BGRA8), kind 0: integer sums rounded to 8 bits as PIL does; R, G, B of a
//   sample are stored as the bytes of one u32. Alpha is never read.
// * packed RGB, kind 2 (a filter that does not round between passes): exact sums stored unrounded as
//   three f32 in 0..255 units at `inter[(r * rw + x) * 3 + c]`.
// * packed RGB, kind 3: kind 0 with the passes the other way round, as PIL does for some shapes
//   (`Plan::down_first`). This pass is then the vertical one: one invocation per (source column
//   `hx_span + x` of the `hx_count` the horizontal taps read, output row r), rounded to 8 bits and
//   stored as kind 0's at `inter[r * hx_count + x]`.
// * YUV 4:2:0: rows `0..luma_rows` are luma rows, the next `chroma_rows` are chroma rows (U and V,
//   each plane with its own row and pixel stride); sums are exact integers, stored unrounded as f32
//   in 0..255 units (luma at `inter[r * rw + x]`, chroma at `inter[chroma_inter + (r * rw + x) * 2]`).
//
// `Params` is shared with to_tensor.wgsl and mirrors `Params` in runtime/src/preprocess/gpu/params.rs.

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
const HALF: i32 = 2097152; // 1 << 21, the rounding half of a 22-bit fixed-point sum
const ONE: f32 = 4194304.0; // 1 << 22

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> taps: array<i32>;
@group(0) @binding(3) var<storage, read_write> inter: array<u32>;

fn byte_at(addr: u32) -> i32 {
    return i32((src[addr >> 2u] >> ((addr & 3u) * 8u)) & 0xffu);
}

// Weighted sum of `width` samples of one row, from sample `first`; exact in i32.
fn row_sum(base: u32, pstride: u32, first: u32, weights: u32, width: u32) -> i32 {
    var acc = 0;
    for (var k = 0u; k < width; k++) {
        acc += taps[weights + k] * byte_at(base + (first + k) * pstride);
    }
    return acc;
}

// The vertical pass first (kind 3): column `hx_span + x`, output row `r`.
fn packed_down_first(x: u32, r: u32) {
    if x >= p.hx_count || r >= p.rh {
        return;
    }
    let first = u32(taps[p.vy_start + r]);
    let weights = p.vy_weights + r * p.vy_width;
    let column = p.y_base + (p.hx_span + x) * p.y_pstride;
    let order = vec3<u32>(p.order & 0xffu, (p.order >> 8u) & 0xffu, (p.order >> 16u) & 0xffu);
    var acc = vec3<i32>(0);
    for (var k = 0u; k < p.vy_width; k++) {
        let w = taps[weights + k];
        // Uploaded rows start at the first source row read (`vy_span`).
        let a = column + (first + k - p.vy_span) * p.y_stride;
        acc += w * vec3<i32>(byte_at(a + order.x), byte_at(a + order.y), byte_at(a + order.z));
    }
    let v = vec3<u32>(clamp((acc + vec3<i32>(HALF)) >> vec3<u32>(22u), vec3<i32>(0), vec3<i32>(255)));
    inter[r * p.hx_count + x] = v.x | (v.y << 8u) | (v.z << 16u);
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x;
    let r = id.y;
    if p.kind == KIND_PACKED_DOWN_FIRST {
        packed_down_first(x, r);
        return;
    }
    if x >= p.rw {
        return;
    }
    if p.kind == KIND_PACKED || p.kind == KIND_PACKED_EXACT {
        if r >= p.luma_rows {
            return;
        }
        let first = u32(taps[p.hx_start + x]);
        let weights = p.hx_weights + x * p.hx_width;
        let base = p.y_base + r * p.y_stride;
        let order = vec3<u32>(p.order & 0xffu, (p.order >> 8u) & 0xffu, (p.order >> 16u) & 0xffu);
        var acc = vec3<i32>(0);
        for (var k = 0u; k < p.hx_width; k++) {
            let w = taps[weights + k];
            let a = base + (first + k) * p.y_pstride;
            acc += w * vec3<i32>(byte_at(a + order.x), byte_at(a + order.y), byte_at(a + order.z));
        }
        if p.kind == KIND_PACKED_EXACT {
            let at = (r * p.rw + x) * 3u;
            let rgb = vec3<f32>(acc) / ONE;
            inter[at] = bitcast<u32>(rgb.x);
            inter[at + 1u] = bitcast<u32>(rgb.y);
            inter[at + 2u] = bitcast<u32>(rgb.z);
            return;
        }
        let v = vec3<u32>(clamp((acc + vec3<i32>(HALF)) >> vec3<u32>(22u), vec3<i32>(0), vec3<i32>(255)));
        inter[r * p.rw + x] = v.x | (v.y << 8u) | (v.z << 16u);
        return;
    }
    if r < p.luma_rows {
        let first = u32(taps[p.hx_start + x]);
        let acc = row_sum(p.y_base + r * p.y_stride, p.y_pstride, first,
                          p.hx_weights + x * p.hx_width, p.hx_width);
        inter[r * p.rw + x] = bitcast<u32>(f32(acc) / ONE);
        return;
    }
    let c = r - p.luma_rows;
    if c >= p.chroma_rows {
        return;
    }
    let first = u32(taps[p.chx_start + x]);
    let weights = p.chx_weights + x * p.chx_width;
    let u = row_sum(p.u_base + c * p.u_stride, p.u_pstride, first, weights, p.chx_width);
    let v = row_sum(p.v_base + c * p.v_stride, p.v_pstride, first, weights, p.chx_width);
    let at = p.chroma_inter + (c * p.rw + x) * 2u;
    inter[at] = bitcast<u32>(f32(u) / ONE);
    inter[at + 1u] = bitcast<u32>(f32(v) / ONE);
}
