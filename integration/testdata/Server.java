// A TLS server that serves one keystore, for the integration tests: run as
// a single-file program (java Server.java <keystore> <password> <type>
// <port-file>). It binds 127.0.0.1 on a free port, writes the port to
// <port-file> once listening, and answers every connection's first line
// with "hello <subject of the key entry's certificate>" until it is
// killed. The keystore is used as Java reads it: KeyStore.getInstance,
// KeyManagerFactory, SSLContext, nothing converted on the way.
import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.Collections;
import javax.net.ssl.*;

public class Server {
    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: java Server.java <keystore> <password> <PKCS12|JKS> <port-file>");
            System.exit(2);
        }
        char[] password = args[1].toCharArray();
        KeyStore ks = KeyStore.getInstance(args[2]);
        try (InputStream in = Files.newInputStream(Paths.get(args[0]))) {
            ks.load(in, password);
        }
        for (String alias : Collections.list(ks.aliases())) {
            System.out.println("entry " + alias + " key=" + ks.isKeyEntry(alias)
                + " chain=" + (ks.getCertificateChain(alias) == null ? 0 : ks.getCertificateChain(alias).length));
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, password);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), null, null);
        SSLServerSocket server = (SSLServerSocket) ctx.getServerSocketFactory()
            .createServerSocket(0, 50, InetAddress.getByName("127.0.0.1"));
        Path tmp = Paths.get(args[3] + ".tmp");
        Files.write(tmp, Integer.toString(server.getLocalPort()).getBytes(StandardCharsets.US_ASCII));
        Files.move(tmp, Paths.get(args[3]), StandardCopyOption.ATOMIC_MOVE);
        System.out.println("listening on 127.0.0.1:" + server.getLocalPort());
        System.out.flush();
        while (true) {
            try (SSLSocket s = (SSLSocket) server.accept()) {
                s.setSoTimeout(10000);
                s.startHandshake();
                SSLSession sess = s.getSession();
                X509Certificate leaf = (X509Certificate) sess.getLocalCertificates()[0];
                System.out.println("handshake " + sess.getProtocol() + " " + sess.getCipherSuite()
                    + " served chain of " + sess.getLocalCertificates().length);
                BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                r.readLine();
                Writer w = new OutputStreamWriter(s.getOutputStream(), StandardCharsets.UTF_8);
                w.write("hello " + leaf.getSubjectX500Principal().getName() + "\n");
                w.flush();
            } catch (IOException e) {
                System.out.println("connection failed: " + e);
            }
            System.out.flush();
        }
    }
}
