// The 32-byte database key comes from the app, never from the core: random bytes kept in the
// Keychain, readable only on this device after its first unlock.
// `Alliance.open` encrypts the store with it (SQLCipher).
import Foundation
import Security

enum DatabaseKey {
    private static let query: [String: Any] = [
        kSecClass as String: kSecClassGenericPassword,
        kSecAttrService as String: "org.alliance.sample",
        kSecAttrAccount as String: "database-key",
    ]

    struct KeychainError: Error { let status: OSStatus }

    static func load() throws -> Data {
        var lookup = query
        lookup[kSecReturnData as String] = true
        var item: CFTypeRef?
        let status = SecItemCopyMatching(lookup as CFDictionary, &item)
        if status == errSecSuccess, let data = item as? Data { return data }
        guard status == errSecItemNotFound else { throw KeychainError(status: status) }

        var key = Data(count: 32)
        let generated = key.withUnsafeMutableBytes { SecRandomCopyBytes(kSecRandomDefault, 32, $0.baseAddress!) }
        guard generated == errSecSuccess else { throw KeychainError(status: generated) }
        var add = query
        add[kSecValueData as String] = key
        add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let added = SecItemAdd(add as CFDictionary, nil)
        guard added == errSecSuccess else { throw KeychainError(status: added) }
        return key
    }
}
