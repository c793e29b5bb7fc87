import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalJson, nodeEd25519, tweetnaclEd25519, keyIdOf } from '@cairn/shared';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

// RFC 8032 §7.1, tests 1-3 (secret key = seed).
const RFC8032 = [
  {
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
];

for (const [name, impl] of [['tweetnacl', tweetnaclEd25519], ['node:crypto', nodeEd25519]] as const) {
  test(`${name} Ed25519 reproduces the RFC 8032 test vectors`, () => {
    for (const v of RFC8032) {
      assert.equal(Buffer.from(impl.publicKeyFromSeed(hex(v.seed))).toString('hex'), v.publicKey);
      assert.equal(Buffer.from(impl.sign(hex(v.message), hex(v.seed))).toString('hex'), v.signature);
      assert.equal(impl.verify(hex(v.message), hex(v.signature), hex(v.publicKey)), true);
    }
  });

  test(`${name} Ed25519 refuses a flipped bit in message, signature or key`, () => {
    const v = RFC8032[2]!;
    const msg = hex(v.message);
    const sig = hex(v.signature);
    const key = hex(v.publicKey);
    const flip = (b: Uint8Array, i: number) => {
      const c = Uint8Array.from(b);
      c[i % c.length]! ^= 1;
      return c;
    };
    assert.equal(impl.verify(flip(msg, 0), sig, key), false);
    assert.equal(impl.verify(msg, flip(sig, 5), key), false);
    assert.equal(impl.verify(msg, flip(sig, 40), key), false);
    assert.equal(impl.verify(msg, sig, flip(key, 3)), false);
    assert.equal(impl.verify(msg, sig.subarray(0, 63), key), false);
  });
}

test('node:crypto and tweetnacl produce identical signatures for random keys and messages', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 512 }), (seed, message) => {
      const a = nodeEd25519.sign(message, seed);
      const b = tweetnaclEd25519.sign(message, seed);
      assert.deepEqual(Buffer.from(a), Buffer.from(b));
      assert.ok(tweetnaclEd25519.verify(message, a, nodeEd25519.publicKeyFromSeed(seed)));
    }),
    { numRuns: 200 },
  );
});

test('key ids are 16 hex digits of the public key hash', () => {
  assert.match(keyIdOf(hex(RFC8032[0]!.publicKey)), /^[0-9a-f]{16}$/);
  assert.notEqual(keyIdOf(hex(RFC8032[0]!.publicKey)), keyIdOf(hex(RFC8032[1]!.publicKey)));
});

test('canonical JSON follows RFC 8785: number formatting', () => {
  // RFC 8785 §3.2.2.3 examples.
  assert.equal(canonicalJson({ numbers: [333333333.33333329, 1e30, 4.5, 2e-3, 0.000000000000000000000000001] }), '{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}');
  assert.equal(canonicalJson([-0, 1e21, 1e-7, 123456789012345680000]), '[0,1e+21,1e-7,123456789012345680000]');
});

test('canonical JSON follows RFC 8785: key order by UTF-16 code units, minimal escapes', () => {
  const input = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
  const out = canonicalJson(input);
  // Object.keys would put "1" first (integer-like keys); read the order from the text itself.
  const order = Object.keys(input).sort((a, b) => out.indexOf(JSON.stringify(a).slice(0, -1)) - out.indexOf(JSON.stringify(b).slice(0, -1)));
  assert.deepEqual(order, ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33']);
  assert.ok(out.startsWith('{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö"'));
  assert.equal(canonicalJson({ b: [true, null, 'a\n"'], a: {} }), '{"a":{},"b":[true,null,"a\\n\\""]}');
});

test('canonical JSON is independent of key insertion order', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 8 }), (obj) => {
      const reversed = Object.fromEntries(Object.entries(obj).reverse());
      assert.equal(canonicalJson(obj), canonicalJson(reversed));
    }),
    { numRuns: 300 },
  );
});
